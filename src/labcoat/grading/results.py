"""What a grading says: the result model (labcoat's JSON, docs/grading.md) and the scores that need no sandbox.

The quiz is scored from its answers file; a part without a usable script gets every check failed
with the same reason (`zero_part`), its checks read from the file without running anything.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labcoat.errors import LabError
from labcoat.grading.submission import QUIZ_FILE

if TYPE_CHECKING:
    from labcoat.checking.run import CheckResult, PartResult
    from labcoat.content.catalog import Catalog
    from labcoat.content.models import Lab, Part


@dataclass
class ScriptRun:
    """What one of the student's scripts did."""

    file: str
    present: bool
    ran: bool = False
    exit_status: int | None = None
    duration: float = 0.0
    timed_out: bool = False
    output: str = ""
    output_bytes: int = 0
    truncated: bool = False
    leftover_processes: int = 0
    note: str | None = None
    disk_exceeded: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "present": self.present, "ran": self.ran, "exit_status": self.exit_status,
                "duration": round(self.duration, 3), "timed_out": self.timed_out, "output": self.output,
                "output_bytes": self.output_bytes, "truncated": self.truncated,
                "leftover_processes": self.leftover_processes, "note": self.note,
                "disk_exceeded": self.disk_exceeded}


@dataclass
class GradedPart:
    """One part's verdict: its checks (with points), the script that ran, the provocation."""

    part: str
    title: str
    status: str  # passed | failed | skipped | not_graded | error
    checks: list[CheckResult] = field(default_factory=list)
    script: ScriptRun | None = None
    reason: str | None = None
    provocation: dict[str, Any] | None = None

    @property
    def points(self) -> float:
        return round(sum(c.points for c in self.checks), 4)

    @property
    def max_points(self) -> float:
        return round(sum(c.max_points for c in self.checks), 4)

    def to_dict(self) -> dict[str, Any]:
        return {"part": self.part, "title": self.title, "status": self.status, "points": self.points,
                "max_points": self.max_points, "reason": self.reason,
                "script": self.script.to_dict() if self.script else None, "provocation": self.provocation,
                "checks": [_check_dict(c) for c in self.checks]}


def _check_dict(c: CheckResult) -> dict[str, Any]:
    data = c.to_dict()
    data.pop("part", None)
    data["points"] = round(float(data["points"]), 4)
    data["max_points"] = round(float(data["max_points"]), 4)
    data["duration"] = round(float(data.get("duration") or 0), 3)
    return data


@dataclass
class QuizGrade:
    """The quiz, scored from the submission's answers file and scaled to the lab's quiz_points."""

    quiz: str
    file: str
    present: bool
    max_points: float
    points: float = 0.0
    score: float = 0.0  # fraction of the quiz's own points (0..1)
    error: str | None = None
    questions: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"quiz": self.quiz, "file": self.file, "present": self.present, "points": self.points,
                "max_points": self.max_points, "score": self.score, "error": self.error,
                "questions": self.questions}


@dataclass
class Grade:
    """Everything about one graded submission; `to_dict()` is labcoat's JSON (docs/grading.md)."""

    lab: str
    title: str
    student: str
    submission: str
    pass_mark: float
    parts: list[GradedPart] = field(default_factory=list)
    quiz: QuizGrade | None = None
    gradable: bool = True
    error: str | None = None
    started_at: str = ""
    duration: float = 0.0
    limits: dict[str, Any] = field(default_factory=dict)
    seed: str | None = None  # drew the sandboxes' random values; `--seed` grades again the same way

    @property
    def points(self) -> float:
        total = sum(p.points for p in self.parts) + (self.quiz.points if self.quiz else 0)
        return round(total, 2)

    @property
    def max_points(self) -> float:
        total = sum(p.max_points for p in self.parts) + (self.quiz.max_points if self.quiz else 0)
        return round(total, 2)

    @property
    def score(self) -> float:
        """Points as a fraction of the points that could be earned (0..1)."""
        return round(self.points / self.max_points, 4) if self.max_points else 0.0

    @property
    def passed(self) -> bool:
        """At least the pass mark; a lab with nothing to verify (only follow-along parts) passes
        when no part failed: 0 of 0 points is not a failure of the student's."""
        if not self.gradable:
            return False
        if not self.max_points:
            return bool(self.parts) and all(p.status != "failed" for p in self.parts)
        return self.points / self.max_points >= self.pass_mark - 1e-9

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "kind": "labcoat.grade",
            "lab": self.lab,
            "title": self.title,
            "student": self.student,
            "submission": self.submission,
            "gradable": self.gradable,
            "error": self.error,
            "points": self.points if self.gradable else None,
            "max_points": self.max_points,
            "score": self.score if self.gradable else None,
            "pass_mark": self.pass_mark,
            "passed": self.passed,
            "started_at": self.started_at,
            "duration": round(self.duration, 2),
            "limits": self.limits,
            "seed": self.seed,
            "parts": [p.to_dict() for p in self.parts],
            "quiz": self.quiz.to_dict() if self.quiz else None,
        }


def ungradable(lab: Lab, student: str, submission: Path | str, error: str, **extra: Any) -> Grade:
    """A Grade that says the grader could not judge this submission (and why)."""
    return Grade(lab=lab.id, title=lab.title, student=student, submission=str(submission), pass_mark=lab.pass_mark,
                 gradable=False, error=error, started_at=_now(), **extra)


def grade_quiz(catalog: Catalog, lab: Lab, quiz_file: Path | None) -> QuizGrade | None:
    """The quiz part of the grade: the answers file scored with the quiz engine, scaled to quiz_points.

    A missing or unreadable answers file scores 0 (the error says why): it is the student's
    file, so it is never a reason to call the submission ungradable.
    """
    if not lab.quiz:
        return None
    from labcoat.quiz.answers import load_answers
    from labcoat.quiz.engine import score_quiz

    quiz = catalog.quiz(lab.quiz)
    worth = float(lab.quiz_points)
    grade = QuizGrade(quiz=quiz.id, file=QUIZ_FILE, present=quiz_file is not None, max_points=worth)
    answers: dict[str, Any] = {}
    if quiz_file is None:
        grade.error = f"no {QUIZ_FILE} in the submission"
    else:
        try:
            answers = load_answers(quiz_file, quiz, display=QUIZ_FILE)
        except LabError as exc:
            grade.error = f"{QUIZ_FILE} could not be read: {exc}"
    result = score_quiz(quiz, answers)
    scale = Fraction(lab.quiz_points) / result.max_points if result.max_points else Fraction(0)
    grade.points = round(float(result.points * scale), 4)
    grade.score = round(float(result.score), 4)
    for r in result.results:
        grade.questions.append({"id": r.question_id, "type": r.type, "points": round(float(r.points * scale), 4),
                                "max_points": round(float(r.max_points * scale), 4), "correct": r.correct,
                                "answered": r.answered, "feedback": r.feedback,
                                # explanations: 0/0 automatic points; their words, model answer and rubric
                                # are in the feedback, for manual grading (docs/quiz.md)
                                **({"manual_points": r.manual_points, "graded_by": "people"} if r.manual else {})})
    return grade


def static_checks(catalog: Catalog, part: Part) -> list[CheckResult]:
    """The part's checks (name, first docstring line) read from its file without running anything."""
    from labcoat.checking.run import CheckResult

    tree = ast.parse(catalog.checks_file(part).read_text(encoding="utf-8"))
    out = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
            doc = (ast.get_docstring(node) or "").strip().splitlines()
            title = doc[0] if doc else node.name.removeprefix("test_").replace("_", " ")
            out.append(CheckResult(part=part.id, check=node.name, title=title, status="failed", points=0,
                                   max_points=0))
    return out


def zero_part(part: Part, checks: list[CheckResult], found: str, status: str = "failed") -> PartResult:
    """Every check of `part` failed with the same reason (points still shared as the lab says)."""
    from labcoat.checking.run import CheckResult, PartResult, assign_points

    result = PartResult(part.id, part.title)
    for c in checks or [CheckResult(part.id, "(part)", part.title, status, 0, 0)]:
        result.checks.append(replace(c, status=status, points=0.0, found=found, hint=None, message=found))
    assign_points(part, result)
    for c in result.checks:
        c.points = 0.0
    return result


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
