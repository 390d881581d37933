"""Attempts and the best score under state_dir()/quiz/<id>.json."""

from __future__ import annotations

import json
from fractions import Fraction as F
from pathlib import Path

from labcoat.paths import state_dir
from labcoat.quiz import progress
from labcoat.quiz.engine import QuestionResult, QuizResult


def result(points: int, max_points: int = 10, quiz_id: str = "5.3") -> QuizResult:
    rs = tuple(QuestionResult(f"q{i}", "single", F(1 if i < points else 0), 1, i < points, "") for i in range(max_points))
    return QuizResult(quiz_id, "T", rs, F(7, 10))


def test_file_lives_in_the_state_dir() -> None:
    assert progress.progress_file("5.3") == state_dir() / "quiz" / "5.3.json"


def test_attempts_and_best_are_saved() -> None:
    progress.record_attempt(result(6), "interactive", 12)
    progress.record_attempt(result(9), "answers", None)
    saved = progress.record_attempt(result(7), "interactive", 13)
    assert saved.count == 3
    assert saved.best is not None and saved.best.points == 9 and saved.best.mode == "answers"
    data = json.loads(progress.progress_file("5.3").read_text())
    assert data["quiz"] == "5.3"
    assert [a["points"] for a in data["attempts"]] == [6, 9, 7]
    assert data["best"]["score"] == 0.9 and data["best"]["passed"] is True
    assert data["attempts"][0]["seed"] == 12 and data["attempts"][0]["passed"] is False
    again = progress.load_progress("5.3")
    assert again.count == 3 and again.best == saved.best


def test_ties_keep_the_earlier_best() -> None:
    first = progress.record_attempt(result(8), "interactive", 1).best
    assert progress.record_attempt(result(8), "interactive", 2).best == first


def test_quizzes_are_kept_apart() -> None:
    progress.record_attempt(result(5, quiz_id="5.3"), "interactive", 1)
    progress.record_attempt(result(3, quiz_id="mini"), "interactive", 1)
    assert progress.load_progress("5.3").count == 1
    assert progress.load_progress("mini").best.points == 3  # type: ignore[union-attr]


def test_no_file_means_no_attempts() -> None:
    fresh = progress.load_progress("never")
    assert fresh.count == 0 and fresh.best is None and fresh.warning is None


def test_a_damaged_file_is_moved_aside(tmp_path: Path) -> None:
    path = progress.progress_file("5.3")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{not json")
    loaded = progress.load_progress("5.3")
    assert loaded.count == 0 and loaded.warning and "5.3.json.corrupt" in loaded.warning
    assert (path.parent / "5.3.json.corrupt").read_text() == "{not json"
    progress.record_attempt(result(4), "answers", None)
    assert progress.load_progress("5.3").count == 1


def test_old_attempts_are_trimmed_but_best_survives(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(progress, "MAX_ATTEMPTS", 3)
    progress.record_attempt(result(10), "answers", None)
    for _ in range(5):
        saved = progress.record_attempt(result(2), "answers", None)
    assert saved.count == 3
    assert saved.best is not None and saved.best.points == 10
    assert progress.load_progress("5.3").best.points == 10  # type: ignore[union-attr]


def test_no_temporary_files_left() -> None:
    progress.record_attempt(result(5), "answers", None)
    assert [p.name for p in progress.progress_file("5.3").parent.iterdir()] == ["5.3.json"]
