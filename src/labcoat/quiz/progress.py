"""Quiz attempts and the best score, in `state_dir()/quiz/<quiz id>.json`.

The file is a cache of the learner's history, never of the course: losing it loses the
history only. It is written atomically (temporary file, then rename). A file that cannot
be read is moved aside to `<id>.json.corrupt` and a fresh history starts, with a warning.

    {"quiz": "5.3", "best": {...attempt...}, "attempts": [{...}, ...]}

An attempt: at (UTC, ISO 8601), mode (interactive | answers), seed, points, max_points,
score (0..1), passed, answered. Only the last MAX_ATTEMPTS attempts are kept; `best`
survives that trimming.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from labcoat.quiz.engine import QuizResult, as_number

MAX_ATTEMPTS = 200


@dataclass(frozen=True)
class Attempt:
    at: str
    mode: str
    seed: int | None
    points: float
    max_points: int
    score: float
    passed: bool
    answered: int

    @classmethod
    def from_result(cls, result: QuizResult, mode: str, seed: int | None, at: datetime | None = None) -> Attempt:
        when = (at or datetime.now(UTC)).isoformat(timespec="seconds")
        return cls(
            at=when,
            mode=mode,
            seed=seed,
            points=float(as_number(result.points)),
            max_points=result.max_points,
            score=float(as_number(result.score)),
            passed=result.passed,
            answered=result.answered,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Attempt:
        return cls(
            at=str(data["at"]),
            mode=str(data["mode"]),
            seed=data.get("seed") if isinstance(data.get("seed"), int) else None,
            points=float(data["points"]),
            max_points=int(data["max_points"]),
            score=float(data["score"]),
            passed=bool(data["passed"]),
            answered=int(data.get("answered", 0)),
        )


@dataclass
class QuizProgress:
    quiz_id: str
    attempts: list[Attempt] = field(default_factory=list)
    best: Attempt | None = None
    warning: str | None = None

    @property
    def count(self) -> int:
        return len(self.attempts)

    def add(self, attempt: Attempt) -> None:
        self.attempts.append(attempt)
        del self.attempts[:-MAX_ATTEMPTS]
        if self.best is None or attempt.score > self.best.score:
            self.best = attempt

    def to_dict(self) -> dict[str, Any]:
        return {
            "quiz": self.quiz_id,
            "best": asdict(self.best) if self.best else None,
            "attempts": [asdict(a) for a in self.attempts],
        }


def progress_file(quiz_id: str) -> Path:
    from labcoat.paths import state_dir

    return state_dir() / "quiz" / f"{quiz_id}.json"


def load_progress(quiz_id: str, path: Path | None = None) -> QuizProgress:
    """The saved history for this quiz (empty if none); a damaged file is moved aside."""
    path = path or progress_file(quiz_id)
    if not path.exists():
        return QuizProgress(quiz_id)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        attempts = [Attempt.from_dict(a) for a in data["attempts"]]
        best = Attempt.from_dict(data["best"]) if data.get("best") else None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        aside = path.with_name(path.name + ".corrupt")
        with contextlib.suppress(OSError):
            os.replace(path, aside)
        return QuizProgress(quiz_id, warning=f"could not read {path} ({exc}); moved it to {aside.name}, starting afresh")
    progress = QuizProgress(quiz_id, attempts, best)
    if progress.best is None and attempts:
        progress.best = max(attempts, key=lambda a: a.score)
    return progress


def save_progress(progress: QuizProgress, path: Path | None = None) -> Path:
    """Write the history atomically; returns the file written."""
    path = path or progress_file(progress.quiz_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(progress.to_dict(), fh, indent=2)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def record_attempt(result: QuizResult, mode: str, seed: int | None, path: Path | None = None) -> QuizProgress:
    """Add this result to the quiz's history and save it; returns the updated history."""
    progress = load_progress(result.quiz_id, path)
    progress.add(Attempt.from_result(result, mode, seed))
    save_progress(progress, path)
    return progress
