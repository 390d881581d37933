"""Explanations are never scored automatically: whatever they say, they earn 0 automatic points,
are shown next to a model answer and rubric, and reach the manual-grading exports."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import yaml

from labcoat.content.quiz import ExplainQuestion, Quiz
from labcoat.quiz.answers import load_answers
from labcoat.quiz.engine import score_answer, score_quiz
from labcoat.quiz.manual import PL_COLUMNS, export, gradescope, manual_items, prairielearn_csv

HERE = Path(__file__).resolve().parent
LABELLED = yaml.safe_load((HERE / "labelled" / "text-answers.yaml").read_text())["answers"]
ATTACKS = [  # beyond the labelled set: the shapes that fooled the old keyword scorer
    "not not not never no instead rather myth page cache available PSI reclaim alert",
    "available " * 400,
    "It is NOT true that the cache is reclaimable. " * 20,
    "- page cache\n- MemAvailable\n- PSI\n- OOM killer\n- SIGKILL 137\n- BestEffort 1000 -997\n- working set",
    "\x1b[31mred\x1b[0m page cache \x07 available",
]


def test_labelled_set_is_balanced() -> None:
    labels = [a["label"] for a in LABELLED]
    assert labels.count("fair") == 20 and labels.count("attack") == 24
    assert {a["question"] for a in LABELLED} == {
        "alert-3am-explain", "container-vs-vm-explain", "qos-who-dies-why", "java-pod-explain",
    }


@pytest.mark.parametrize("entry", LABELLED, ids=lambda e: f"{e['question']}-{e['label']}-{e['text'][:24]}")
def test_no_explanation_earns_an_automatic_point(quiz53: Quiz, entry: dict[str, str]) -> None:
    q = quiz53.question(entry["question"])
    result = score_answer(q, entry["text"])
    assert (result.points, result.max_points, result.correct) == (0, 0, False)
    assert result.manual_points == q.points == 3
    assert result.answer_text == entry["text"].strip()
    assert "A model answer:" in result.feedback and "Rubric (3 point(s), graded by people)" in result.feedback


@pytest.mark.parametrize("text", ATTACKS)
def test_attacks_earn_nothing_and_stay_readable(quiz53: Quiz, text: str) -> None:
    for q in quiz53.questions:
        if isinstance(q, ExplainQuestion):
            result = score_answer(q, text)
            assert result.points == 0 and result.max_points == 0
            assert "\x1b" not in result.feedback and "\x07" not in result.feedback  # no escape codes


def test_the_quiz_total_does_not_move_with_explanations(quiz53: Quiz, answers_dir: Path) -> None:
    answers = load_answers(answers_dir / "5.3-all-correct.yaml", quiz53)
    full = score_quiz(quiz53, answers)
    for entry in LABELLED:  # replace every explanation by an attack or a fair answer: same score
        changed = score_quiz(quiz53, {**answers, entry["question"]: entry["text"]})
        assert (changed.points, changed.max_points, changed.passed) == (full.points, 67, True)
    blank = score_quiz(quiz53, {k: v for k, v in answers.items() if not isinstance(quiz53.question(k), ExplainQuestion)})
    assert blank.points == full.points == 67


def labelled_result(quiz53: Quiz, label: str):  # noqa: ANN201
    """The expert's structured answers plus, for each explain question, the first labelled answer with `label`."""
    answers: dict[str, object] = {}
    for entry in LABELLED:
        if entry["label"] == label:
            answers.setdefault(entry["question"], entry["text"])
    return score_quiz(quiz53, answers), answers


@pytest.mark.parametrize("label", ["fair", "attack"])
def test_every_explanation_reaches_the_gradescope_export(quiz53: Quiz, label: str) -> None:
    result, answers = labelled_result(quiz53, label)
    data = json.loads(export("gradescope", quiz53, result, "s1"))
    assert data == gradescope(quiz53, result, "s1")
    manual = [t for t in data["tests"] if "manual-grading" in t.get("tags", [])]
    assert len(manual) == 5
    for t in manual:
        assert "score" not in t and "max_score" not in t  # never pretends to have scored it
        qid = t["extra_data"]["question"]
        if qid in answers:
            first_line = str(answers[qid]).strip().splitlines()[0]
            assert f"> {first_line}" in t["output"] and t["extra_data"]["answered"] is True
        assert "A model answer:" in t["output"] and t["extra_data"]["manual_points"] == 3
        assert sum(r["points"] for r in t["extra_data"]["rubric"]) == 3
    scored = [t for t in data["tests"] if "score" in t]
    assert len(scored) == 37 and sum(t["max_score"] for t in scored) == 67
    assert data["score"] == sum(t["score"] for t in scored) == 0  # only explanations were answered


@pytest.mark.parametrize("label", ["fair", "attack"])
def test_every_explanation_reaches_the_prairielearn_csv(quiz53: Quiz, label: str) -> None:
    result, answers = labelled_result(quiz53, label)
    rows = list(csv.DictReader(io.StringIO(prairielearn_csv(quiz53, result, "s1"))))
    assert tuple(rows[0]) == PL_COLUMNS
    assert [r["qid"] for r in rows] == [i["question"] for i in manual_items(quiz53, result)]
    for row in rows:
        assert row["uid"] == "s1" and row["score_perc"] == "" and row["feedback"] == ""  # for the grader
        submitted = json.loads(row["submitted_answer"])["ans"]
        assert submitted == (str(answers[row["qid"]]).strip() if row["qid"] in answers else None)
        truth = json.loads(row["true_answer"])
        assert truth["model_answer"] and sum(r["points"] for r in truth["rubric"]) == truth["max_points"]


def test_cli_export_manual(cli, quiz_content: Path, answers_dir: Path, tmp_path: Path) -> None:  # noqa: ANN001
    path = str(answers_dir / "5.3-all-correct.yaml")
    out = tmp_path / "results.json"
    result = cli("--content", str(quiz_content), "quiz", "5.3", "--answers", path, "--no-save",
                 "--export-manual", "gradescope", str(out), "--student", "ada")
    assert result.exit_code == 0, result
    assert "15 points of explanations to grade by hand" in result.stderr
    data = json.loads(out.read_text())
    assert data["score"] == 67 and "Quiz 5.3 for ada" in data["output"]
    refused = cli("--content", str(quiz_content), "quiz", "5.3", "--answers", path, "--no-save",
                  "--export-manual", "prairielearn", str(out))
    assert refused.exit_code == 2 and "already exists" in refused.stderr
    csv_out = tmp_path / "manual.csv"
    ok = cli("--content", str(quiz_content), "quiz", "5.3", "--answers", path, "--no-save",
             "--export-manual", "prairielearn", str(csv_out))
    assert ok.exit_code == 0, ok
    rows = list(csv.DictReader(io.StringIO(csv_out.read_text())))
    assert len(rows) == 5 and {r["uid"] for r in rows} == {"5.3-all-correct"}


def test_lab_grade_lists_explanations_as_manual_items() -> None:
    from labcoat.content.catalog import Catalog
    from labcoat.grading.results import grade_quiz

    catalog = Catalog.load(HERE.parents[2])
    grade = grade_quiz(catalog, catalog.lab("5.3"), HERE / "answers" / "5.3-all-correct.yaml")
    assert grade is not None and grade.score == 1
    manual = [q for q in grade.questions if q.get("graded_by") == "people"]
    assert [q["id"] for q in manual] == ["alert-3am-explain", "container-vs-vm-explain", "qos-who-dies-why",
                                         "java-pod-explain", "leak-explain"]
    for q in manual:
        assert q["points"] == 0 and q["max_points"] == 0 and q["manual_points"] == 3
        assert "**Your answer:**" in q["feedback"] and "A model answer:" in q["feedback"]
