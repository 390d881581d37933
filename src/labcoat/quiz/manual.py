"""Explanations for manual grading, in the shapes Gradescope and PrairieLearn use.

labcoat never scores an `explain` answer. `lab quiz ID --answers F --export-manual FORMAT OUT`
writes the learner's words next to the model answer and the rubric, for an instructor:

* ``gradescope``: a Gradescope autograder ``results.json``. The auto-scored questions are
  tests with ``score``/``max_score`` (their sum is the top-level ``score``); every explanation
  is a test *without* a score, tagged ``manual-grading``, whose ``output`` (Markdown) shows the
  answer, the model answer and the rubric. Gradescope adds manual points in its own grading
  interface, so nothing here pretends to have scored them.
* ``prairielearn``: the CSV PrairieLearn uses for manual grading by file upload
  (``uid,qid,submission_id,params,true_answer,submitted_answer,score_perc,feedback``): one row
  per explanation, ``true_answer`` holding the model answer and rubric as JSON,
  ``submitted_answer`` holding ``{"ans": ...}``, and ``score_perc``/``feedback`` left blank
  for the grader to fill in.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from labcoat.content.quiz import ExplainQuestion, Quiz
from labcoat.grading.reports import clean
from labcoat.quiz.engine import QuizResult, as_number, self_assessment

FORMATS = ("gradescope", "prairielearn")
PL_COLUMNS = ("uid", "qid", "submission_id", "params", "true_answer", "submitted_answer", "score_perc", "feedback")


def _explains(quiz: Quiz) -> dict[str, ExplainQuestion]:
    return {q.id: q for q in quiz.questions if isinstance(q, ExplainQuestion)}


def manual_items(quiz: Quiz, result: QuizResult) -> list[dict[str, Any]]:
    """One entry per explain question: the answer (or None), the model answer and the rubric."""
    explains = _explains(quiz)
    items = []
    for r in result.results:
        q = explains.get(r.question_id)
        if q is None:
            continue
        items.append({
            "question": q.id,
            "prompt": q.prompt.strip(),
            "answer": r.answer_text if r.answered else None,
            "max_points": q.points,
            "model_answer": q.model_answer.strip(),
            "rubric": [{"id": i.id, "points": i.points, "criterion": i.criterion.strip()} for i in q.rubric],
        })
    return items


def gradescope(quiz: Quiz, result: QuizResult, student: str) -> dict[str, Any]:
    """A Gradescope results.json: auto-scored questions scored, explanations as unscored manual-grading tests."""
    explains = _explains(quiz)
    tests: list[dict[str, Any]] = []
    for n, r in enumerate(result.results, 1):
        q = explains.get(r.question_id)
        if q is None:
            tests.append({"name": f"{quiz.id} {r.question_id}", "number": str(n), "score": as_number(r.points),
                          "max_score": r.max_points, "status": "passed" if r.correct else "failed",
                          "output": clean(r.feedback), "output_format": "md", "visibility": "visible"})
            continue
        answer = "\n".join(f"> {line}" for line in (r.answer_text or "").splitlines()) or "_(not answered)_"
        tests.append({
            "name": f"{quiz.id} {q.id} (manual grading, {q.points} points)",
            "number": str(n),
            "output": f"**Question:** {q.prompt.strip()}\n\n**Answer:**\n\n{answer}\n\n{self_assessment(q)}",
            "output_format": "md",
            "tags": ["manual-grading"],
            "visibility": "visible",
            "extra_data": {"question": q.id, "manual_points": q.points, "answered": r.answered,
                           "rubric": [{"id": i.id, "points": i.points, "criterion": i.criterion.strip()}
                                      for i in q.rubric]},
        })
    return {
        "score": as_number(result.points),
        "output": f"Quiz {quiz.id} for {student}: {as_number(result.points)} of {result.max_points} automatically "
        f"scored points. {result.manual_points} points of explanations are graded by hand (tests tagged "
        "manual-grading).",
        "output_format": "md",
        "visibility": "visible",
        "tests": tests,
    }


def prairielearn_csv(quiz: Quiz, result: QuizResult, student: str) -> str:
    """PrairieLearn's manual-grading CSV: one row per explanation, score_perc and feedback left blank."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(PL_COLUMNS)
    for item in manual_items(quiz, result):
        true_answer = {"model_answer": item["model_answer"], "rubric": item["rubric"],
                       "max_points": item["max_points"]}
        writer.writerow([
            student, item["question"], f"{student}/{quiz.id}/{item['question']}", "{}",
            json.dumps(true_answer, ensure_ascii=False), json.dumps({"ans": item["answer"]}, ensure_ascii=False),
            "", "",
        ])
    return out.getvalue()


def export(fmt: str, quiz: Quiz, result: QuizResult, student: str) -> str:
    """The export as text, ready to write to a file."""
    if fmt == "gradescope":
        return json.dumps(gradescope(quiz, result, student), indent=2, ensure_ascii=False) + "\n"
    if fmt == "prairielearn":
        return prairielearn_csv(quiz, result, student)
    raise ValueError(f"unknown format {fmt!r}; the formats are: {', '.join(FORMATS)}")
