"""Pure quiz scoring: answers in, points and feedback out. No I/O, no printing.

Points are `fractions.Fraction`, so partial credit is exact (1/3 is 1/3, not
0.333...) and a test can compare hand-computed scores with `==`. The rules are the ones
in docs/quiz.md; the numbers in this module's comments refer to its sections.

Every auto-scored type is exact: a choice id, a set of ids, an order of ids, a number or
size within a stated tolerance, a token from a list. Free text (`explain`) is never scored
here: its result carries 0 automatic points, the model answer and the rubric for
self-assessment, and the manual points an instructor grades (`labcoat.quiz.manual`).

Answers arrive in one normal form (`Answer`): None when unanswered, a string (a choice
id, a number or size as written, an explanation) or a tuple (ids for multiple choice and
ordering, one text per blank for blanks). `normalize_answer` turns what a YAML file or a
caller gives into that form and raises `AnswerFormatError` with a plain message when it cannot.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from labcoat.content.quiz import Blank, ExplainQuestion, NumericQuestion, QuestionBase, Quiz
from labcoat.grading.reports import clean
from labcoat.quiz.values import EXAMPLES, UNIT_RULES, AnswerFormatError, normal_token, parse_value
from labcoat.units import human

Answer = str | tuple[str, ...] | None
AnyQuestion = QuestionBase  # any question type (labcoat.quiz.types has each type's behaviour)
MAX_EXPLAIN_CHARS = 8000  # an explanation is a few sentences; longer text is refused, not truncated

# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class QuestionResult:
    """The score of one answer. `points` is exact; `feedback` is Markdown."""

    question_id: str
    type: str
    points: Fraction
    max_points: int
    correct: bool
    feedback: str
    answered: bool = True
    details: tuple[dict[str, Any], ...] = ()
    manual_points: int = 0  # explain: points an instructor grades; never part of `points`
    answer_text: str | None = None  # explain: the learner's words, for self-assessment and export

    @property
    def manual(self) -> bool:
        return _type(self.type).model.manual  # type: ignore[no-any-return]

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.question_id,
            "type": self.type,
            "points": as_number(self.points),
            "max_points": self.max_points,
            "correct": self.correct,
            "answered": self.answered,
            "feedback": self.feedback,
        }
        if self.details:
            data["details"] = [dict(d) for d in self.details]
        if self.manual:
            data["manual_points"] = self.manual_points
            data["graded_by"] = "people"
        return data


@dataclass(frozen=True)
class QuizResult:
    """Every question's result, in the quiz file's order, and the total against the pass mark."""

    quiz_id: str
    title: str
    results: tuple[QuestionResult, ...]
    pass_mark: Fraction

    @property
    def points(self) -> Fraction:
        return sum((r.points for r in self.results), Fraction(0))

    @property
    def max_points(self) -> int:
        return sum(r.max_points for r in self.results)

    @property
    def score(self) -> Fraction:
        """Points as a fraction of the maximum (0..1)."""
        return self.points / self.max_points if self.max_points else Fraction(0)

    @property
    def passed(self) -> bool:
        return self.score >= self.pass_mark

    @property
    def answered(self) -> int:
        return sum(1 for r in self.results if r.answered)

    @property
    def manual_points(self) -> int:
        """Points of the explain questions, left to people; not in `points`, `score` or `passed`."""
        return sum(r.manual_points for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "quiz": self.quiz_id,
            "title": self.title,
            "points": as_number(self.points),
            "max_points": self.max_points,
            "score": as_number(self.score),
            "pass_mark": as_number(self.pass_mark),
            "passed": self.passed,
            "answered": self.answered,
            "manual_points": self.manual_points,
            "questions": [r.to_dict() for r in self.results],
        }


def as_number(value: Fraction) -> int | float:
    """A Fraction for JSON: an int when whole, else a float rounded to 4 places."""
    if value.denominator == 1:
        return int(value)
    return round(float(value), 4)


def fmt(value: Fraction) -> str:
    """A Fraction for people: 1, 0.5, 0.333 (three places at most)."""
    if value.denominator == 1:
        return str(int(value))
    return f"{float(value):.3f}".rstrip("0").rstrip(".")


def to_fraction(value: int | float | str) -> Fraction:
    """An exact Fraction of a YAML number as written (0.1 is 1/10, not the binary float)."""
    if isinstance(value, float):
        return Fraction(repr(value))
    return Fraction(value)


# ----------------------------------------------------------------------------- answers


def _ids(raw: Any, what: str) -> tuple[str, ...]:
    if isinstance(raw, str):
        parts = [p for p in re.split(r"[\s,]+", raw.strip()) if p]
    elif isinstance(raw, list | tuple):
        parts = []
        for item in raw:
            if not isinstance(item, str):
                raise AnswerFormatError(f"{what}: {item!r} is not an id; write ids as text, e.g. [a, c]")
            parts.append(item.strip())
    else:
        raise AnswerFormatError(f"{what}: expected a list of ids, e.g. [a, c], found {_kind(raw)}")
    return tuple(parts)


def _kind(raw: Any) -> str:
    if isinstance(raw, str):
        return f"the text {raw[:40]!r}"
    if isinstance(raw, bool):
        return f"true/false ({raw!r})"
    if isinstance(raw, dict):
        return "a mapping"
    if isinstance(raw, list | tuple):
        return "a list"
    if isinstance(raw, int | float):
        return f"the number {raw!r}"
    return repr(raw)


def _known(ids: Sequence[str], valid: Sequence[str], what: str) -> None:
    for item in ids:
        if item not in valid:
            raise AnswerFormatError(f"unknown {what} {item!r}; the {what}s are: {', '.join(valid)}")


def normalize_answer(question: AnyQuestion, raw: Any) -> Answer:
    """Bring an answer into normal form, or raise AnswerFormatError saying what is wrong.

    Lists of ids may also be written as one string, "a, c" or "a c". Blank text is None.
    """
    if isinstance(raw, str):
        raw = clean(raw)  # no control characters or escape sequences ever reach a terminal or an export
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    return _type(question).normalize(question, raw)


def _value_text(spec: NumericQuestion | Blank, raw: Any) -> str:
    """A number or size answer as text, checked readable (AnswerFormatError otherwise)."""
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise AnswerFormatError(f"expected a {value_hint(spec)}, found {_kind(raw)}")
    text = raw if isinstance(raw, str) else repr(raw)
    parse_value(spec, text)  # raises AnswerFormatError
    return text.strip()


def value_hint(spec: NumericQuestion | Blank) -> str:
    """What to write for a number or size (the size examples follow the stated convention)."""
    if spec.kind == "bytes":
        return f"size such as {EXAMPLES[spec.units]}"
    return f"number{f' (the unit {spec.unit} is optional)' if spec.unit else ''}"


def unit_rule(spec: NumericQuestion | Blank) -> str:
    """The size convention as told to the learner (empty for plain numbers)."""
    return UNIT_RULES[spec.units] if spec.kind == "bytes" else ""


def parse_numeric(q: NumericQuestion | Blank, raw: str | int | float) -> Fraction:
    """The value of a numeric answer: bytes for kind bytes (under the question's units), else the number."""
    return parse_value(q, raw)


# ----------------------------------------------------------------------------- scoring


def score_answer(question: AnyQuestion, answer: Any) -> QuestionResult:
    """Score one answer (normal form or raw; see normalize_answer) against its question."""
    answer = normalize_answer(question, answer)
    if answer is None:
        if question.manual:
            return QuestionResult(question.id, question.type, Fraction(0), 0, False, "Not answered.",
                                  answered=False, manual_points=question.points)
        return QuestionResult(
            question.id, question.type, Fraction(0), question.points, False, "Not answered.", answered=False
        )
    return _type(question).score(question, answer)


def score_quiz(quiz: Quiz, answers: Mapping[str, Any]) -> QuizResult:
    """Score a mapping of question id -> answer; questions without an entry are unanswered."""
    known = {q.id for q in quiz.questions}
    for qid in answers:
        if qid not in known:
            raise AnswerFormatError(f"quiz {quiz.id} has no question {qid!r}")
    results = tuple(score_answer(q, answers.get(q.id)) for q in quiz.questions)
    return QuizResult(quiz.id, quiz.title, results, to_fraction(quiz.pass_mark))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _show_numeric(q: NumericQuestion | Blank, value: Fraction) -> str:
    if q.kind == "bytes":
        shown = fmt(value)
        return f"{shown} bytes ({human(float(value))})" if abs(value) >= 1024 else f"{shown} bytes"
    return f"{fmt(value)}{q.unit or ''}"


def check_value(q: NumericQuestion | Blank, text: str) -> tuple[bool, str]:
    """(right?, feedback) for a number or size answer: right within the tolerance, else the mistake's feedback."""
    value = parse_value(q, text)
    assert q.answer is not None
    target = parse_value(q, q.answer)
    tolerance = max(parse_value(q, q.tolerance), abs(target) * to_fraction(q.relative_tolerance))
    correct = abs(value - target) <= tolerance
    within = f" (within ±{_show_numeric(q, tolerance)})" if tolerance else ""
    if correct:
        return True, f"Correct: {_show_numeric(q, value)}{within}."
    direction = "too high" if value > target else "too low"
    feedback = f"You answered {_show_numeric(q, value)}, {direction}; the answer is {_show_numeric(q, target)}{within}."
    for mistake in q.mistakes:
        if abs(value - parse_value(q, mistake.value)) <= tolerance:
            feedback += "\n\n" + mistake.feedback.strip()
            break
    return False, feedback


def check_token(b: Blank, text: str) -> tuple[bool, str]:
    """(right?, feedback) for a token blank: exact match with an accepted spelling (docs/quiz.md)."""
    given = normal_token(text, b.case_sensitive)
    if any(given == normal_token(t, b.case_sensitive) for t in b.accept):
        return True, f"Correct: `{b.accept[0]}`."
    feedback = f"You wrote `{_one_line(text)[:80]}`; the answer is `{b.accept[0]}`."
    for mistake in b.mistakes:
        if given == normal_token(str(mistake.value), b.case_sensitive):
            feedback += " " + mistake.feedback.strip()
            break
    return False, feedback


def self_assessment(q: ExplainQuestion) -> str:
    """The model answer and the rubric, as Markdown: what the learner compares their words with."""
    rubric = "\n".join(f"- [{r.points} pt] {_one_line(r.criterion)}" for r in q.rubric)
    return f"**A model answer:** {_one_line(q.model_answer)}\n\n**Rubric ({q.points} point(s), graded by people):**\n{rubric}"


def explain_result(q: ExplainQuestion, text: str) -> QuestionResult:
    """An explanation is never scored automatically: 0 of 0 automatic points, its manual points left to people."""
    quoted = "\n".join(f"> {line}" for line in text.splitlines())
    feedback = (
        "Not scored automatically. Compare your answer with the model answer and the rubric below; an "
        f"instructor grades it by hand ({q.points} manual point(s)).\n\n**Your answer:**\n\n{quoted}\n\n"
        + self_assessment(q)
    )
    return QuestionResult(q.id, q.type, Fraction(0), 0, False, feedback, manual_points=q.points, answer_text=text)


def kendall_tau(order: Sequence[str], truth: Sequence[str]) -> tuple[int, int, Fraction]:
    """(concordant pairs, all pairs, tau) of a permutation `order` against `truth`."""
    rank = {item: i for i, item in enumerate(order)}
    n = len(truth)
    pairs = n * (n - 1) // 2
    concordant = sum(1 for i in range(n) for j in range(i + 1, n) if rank[truth[i]] < rank[truth[j]])
    tau = Fraction(concordant - (pairs - concordant), pairs) if pairs else Fraction(1)
    return concordant, pairs, tau


# ----------------------------------------------------------------------------- shuffling


@dataclass(frozen=True)
class PresentedQuestion:
    """A question as shown: its number and its choices or items in shown order."""

    number: int
    question: AnyQuestion
    options: tuple[str, ...] = ()

    @property
    def labels(self) -> tuple[str, ...]:
        """A, B, C, ... for the options in shown order."""
        return tuple(_label(i) for i in range(len(self.options)))


@dataclass(frozen=True)
class Presentation:
    seed: int
    questions: tuple[PresentedQuestion, ...]


def _label(i: int) -> str:
    return chr(ord("A") + i) if i < 26 else f"A{i - 25}"


def _rng(quiz: Quiz, seed: int, *parts: str) -> random.Random:
    # A string seed is hashed with SHA-512 by random.Random: stable across runs and Python
    # processes (unlike hash()), so a seed reproduces the same quiz everywhere.
    return random.Random(":".join(("labcoat-quiz", quiz.id, str(seed), *parts)))


def option_order(quiz: Quiz, question: AnyQuestion, seed: int) -> tuple[str, ...]:
    """Choice/item ids in the order shown for this seed (a question's own RNG: independent of question order)."""
    return _type(question).options(quiz, question, seed)


def present(quiz: Quiz, seed: int) -> Presentation:
    """The quiz in the order shown for `seed`: questions (if the quiz shuffles) and their options."""
    # Follow-ups ride with the question they follow: shuffle blocks, not single questions.
    blocks: list[list[AnyQuestion]] = []
    block_of: dict[str, list[AnyQuestion]] = {}
    for q in quiz.questions:
        if q.follows is not None and q.follows in block_of:
            block = block_of[q.follows]
            block.append(q)
        else:
            block = [q]
            blocks.append(block)
        block_of[q.id] = block
    if quiz.shuffle_questions:
        _rng(quiz, seed).shuffle(blocks)
    questions = [q for block in blocks for q in block]
    shown = tuple(PresentedQuestion(n, q, option_order(quiz, q, seed)) for n, q in enumerate(questions, 1))
    return Presentation(seed, shown)


def parse_typed(pq: PresentedQuestion, text: str) -> Answer:
    """What a learner typed at the prompt, in normal form; letters refer to the shown labels.

    Raises AnswerFormatError with what to type instead. Empty input is not an answer (None).
    """
    text = text.strip()
    if not text:
        return None
    return _type(pq.question).parse_typed(pq, text)


def _type(question: Any) -> Any:
    """The registered QuestionType of a question or a `type` key (labcoat.quiz.types imports this module)."""
    from labcoat.quiz.types import question_type

    return question_type(question)
