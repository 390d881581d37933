"""The quiz schema: `quizzes/<id>.yaml` and its questions.

A quiz is data: the engine (`labcoat.quiz.engine`) scores answers against these models
and never names a question. Six question types share one base and are told apart by
their `type` key (a discriminated union): `single`, `multiple`, `numeric`, `blanks`,
`ordering` and `explain`. Every type but `explain` is scored exactly; `explain` is never
scored by labcoat (self-assessment against a model answer, manual grading by instructors).
How each type is scored is documented in docs/quiz.md; the validators below refuse
questions that could not be scored as documented (a single-choice question with two right
answers, an ordering with a repeated item, a size the question's units cannot read, ...),
each with the offending id in the message.

Sequences are tuples (the models are frozen) but YAML gives lists, so every sequence is
`Strict(False)`: only the container is lax, the items stay strict.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Union, get_args

from pydantic import Discriminator, Field, Strict, StringConstraints, Tag, model_validator

from labcoat.content.models import LabId, Model

QuestionId = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9-]*$"),
    Field(description="Question id: lower-case letters, digits and '-', starting with a letter."),
]
OptionId = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9-]*$"),
    Field(description="Id of a choice or item (e.g. a, b, besteffort); answers files refer to it."),
]
Markdown = Annotated[str, StringConstraints(min_length=1)]


def _unique(ids: list[str], what: str) -> None:
    seen: set[str] = set()
    for item in ids:
        if item in seen:
            raise ValueError(f"{what} id {item!r} is used twice")
        seen.add(item)


def _sum_points(question: Any, parts: tuple[Any, ...], what: str, whole: str) -> None:
    """Ids unique, and the question's points are the sum of its parts' (set here when left out)."""
    _unique([p.id for p in parts], what)
    total = sum(p.points for p in parts)
    if question.points not in (0, total):
        raise ValueError(
            f"question {question.id!r}: points is {question.points} but {whole} to {total}; leave points out"
        )
    object.__setattr__(question, "points", total)  # frozen model: set once, while validating


class _Question(Model):
    """What every question has. A new type is a subclass listed in QUESTION_MODELS below, and its behaviour
    (reading, scoring, asking) registered in `labcoat.quiz.types` (docs/authoring.md)."""

    # True: graded by people, never part of the automatic score or the pass mark.
    manual: ClassVar[bool] = False

    id: QuestionId
    prompt: Markdown = Field(description="The question, in Markdown.")
    explanation: Markdown = Field(
        description="Markdown shown after the learner answers: why the answer is what it is. It should teach."
    )
    points: int = Field(1, ge=1, le=100, description="Points for a fully correct answer.")
    tags: Annotated[tuple[str, ...], Strict(False)] = Field(
        (), description="Free labels, e.g. scenario, predict, table; shown nowhere, useful for authors."
    )
    follows: QuestionId | None = Field(
        None,
        description="Id of an earlier question this one is a follow-up to: shuffling keeps it right after that "
        "question, so its prompt may say 'the previous question'.",
    )


# ----------------------------------------------------------------------------- choices


class Choice(Model):
    """One option of a single- or multiple-choice question."""

    id: OptionId
    text: Markdown = Field(description="The option as shown, in Markdown.")
    correct: bool = Field(False, description="Whether ticking this option is right.")
    feedback: str | None = Field(None, description="Shown when the learner picks this option: why it is (not) right.")


Choices = Annotated[tuple[Choice, ...], Strict(False)]


class SingleChoice(_Question):
    """Pick exactly one option; all or nothing."""

    type: Literal["single"] = Field(description="single: exactly one correct choice.")
    choices: Choices = Field(min_length=2, description="The options; exactly one has correct: true.")
    shuffle: bool = Field(True, description="Shuffle the options (set false for e.g. 'none of the above').")

    @model_validator(mode="after")
    def _check(self) -> SingleChoice:
        _unique([c.id for c in self.choices], "choice")
        right = [c.id for c in self.choices if c.correct]
        if len(right) != 1:
            found = f" ({', '.join(right)})" if right else ""
            raise ValueError(
                f"question {self.id!r}: a single-choice question needs exactly one correct choice; "
                f"found {len(right)}{found}"
            )
        return self


class MultipleChoice(_Question):
    """Tick every right option; partial credit with a penalty for wrong ticks."""

    type: Literal["multiple"] = Field(description="multiple: tick all that apply.")
    choices: Choices = Field(min_length=3, description="The options; at least one right and one wrong.")
    shuffle: bool = Field(True, description="Shuffle the options.")

    @model_validator(mode="after")
    def _check(self) -> MultipleChoice:
        _unique([c.id for c in self.choices], "choice")
        right = sum(1 for c in self.choices if c.correct)
        if right == 0 or right == len(self.choices):
            raise ValueError(
                f"question {self.id!r}: a multiple-choice question needs at least one correct and one "
                f"wrong choice; {right} of {len(self.choices)} are correct"
            )
        return self


# ----------------------------------------------------------------------------- numeric

Units = Literal["docker", "kubernetes", "procfs"]


class NumericMistake(Model):
    """A wrong value learners often give, with feedback that targets that mistake."""

    value: str | int | float = Field(description="The wrong value, in the question's kind (a size or a number).")
    feedback: Markdown = Field(description="Shown when the answer matches this value (within the tolerance).")


class _Value(Model):
    """What a numeric answer is checked against: shared by numeric questions and numeric blanks."""

    kind: Literal["number", "bytes"] = Field(
        "number",
        description="bytes: a size, read with the `units` convention; number: a plain number, optionally "
        "followed by `unit`.",
    )
    answer: str | int | float = Field(description="The right value: a size for bytes, a number for number.")
    tolerance: str | int | float = Field(
        0, description="Absolute tolerance in the same kind (e.g. 1Mi, or 0.5); an answer within it is right."
    )
    relative_tolerance: float = Field(
        0, ge=0, lt=1, description="Tolerance as a fraction of the answer (0.05 = 5%); the larger tolerance wins."
    )
    unit: str | None = Field(
        None, description="For kind number: a unit the learner may write after the number, e.g. % or s."
    )
    units: Units = Field(
        "docker",
        description="For kind bytes, how sizes are read; the rule is shown with the question. docker: binary k m g t "
        "(`docker run --memory`); kubernetes: quantities, k M G T = 10^3, 10^6, ..., Ki Mi Gi Ti = 2^10, 2^20, ..., "
        "no `GB`; procfs: kB = KiB = 1024 bytes as in /proc/meminfo, MiB and GiB as `free -m`/`-g` print them.",
    )
    mistakes: Annotated[tuple[NumericMistake, ...], Strict(False)] = Field(
        (), description="Common wrong values with targeted feedback."
    )

    def _check_value(self, who: str) -> None:
        from labcoat.quiz.values import value_problem  # the one reader of sizes and numbers

        values = [("answer", self.answer), ("tolerance", self.tolerance)]
        values += [(f"mistakes[{i}].value", m.value) for i, m in enumerate(self.mistakes)]
        for where, value in values:
            problem = value_problem(self, value)
            if problem:
                raise ValueError(f"{who}: {where}: {problem}")
        if self.kind == "bytes" and self.unit is not None:
            raise ValueError(f"{who}: 'unit' is only for kind number; sizes carry their own unit")
        if self.unit is not None and not self.unit.strip():
            raise ValueError(f"{who}: 'unit' must not be blank")


class NumericQuestion(_Value, _Question):
    """A number or a byte size, right within a tolerance; all or nothing."""

    type: Literal["numeric"] = Field(description="numeric: a number or a size.")

    @model_validator(mode="after")
    def _check(self) -> NumericQuestion:
        self._check_value(f"question {self.id!r}")
        return self


# ----------------------------------------------------------------------------- fill in the blanks


class Blank(_Value):
    """One blank: a short token from a list of accepted spellings, or a number/size like a numeric question."""

    id: OptionId
    label: Markdown = Field(description="What goes in this blank, shown before it (e.g. 'the v2 file').")
    points: int = Field(1, ge=1, le=100, description="Points for this blank; all or nothing.")
    kind: Literal["token", "number", "bytes"] = Field(  # type: ignore[assignment]
        "token",
        description="token: one of `accept`, matched exactly (docs/quiz.md); number/bytes: as a numeric question.",
    )
    answer: str | int | float | None = Field(  # type: ignore[assignment]
        None, description="For number/bytes: the right value."
    )
    accept: Annotated[tuple[str, ...], Strict(False)] = Field(
        (), description="For token: every accepted spelling; the first is shown as the answer."
    )
    case_sensitive: bool = Field(False, description="For token: compare letter case too.")

    @model_validator(mode="after")
    def _check(self) -> Blank:
        if self.kind != "token":
            if self.accept:
                raise ValueError(f"blank {self.id!r}: `accept` is for token blanks; give `answer`")
            if self.answer is None:
                raise ValueError(f"blank {self.id!r}: a {self.kind} blank needs `answer`")
            self._check_value(f"blank {self.id!r}")
            return self
        if not self.accept:
            raise ValueError(f"blank {self.id!r}: a token blank needs `accept`")
        if self.answer is not None or self.unit is not None:
            raise ValueError(f"blank {self.id!r}: `answer` and `unit` are for number/bytes blanks; use `accept`")
        for token in self.accept:
            if not token.strip() or len(token) > 200:
                raise ValueError(f"blank {self.id!r}: accepted token {token!r} must be 1-200 characters")
        for i, m in enumerate(self.mistakes):
            if not isinstance(m.value, str):
                raise ValueError(f"blank {self.id!r}: mistakes[{i}].value must be text")
        return self


class BlanksQuestion(_Question):
    """Fill in one or more blanks; each blank is exact (all or nothing) and worth its own points."""

    type: Literal["blanks"] = Field(description="blanks: fill in short tokens or numbers, each checked exactly.")
    blanks: Annotated[tuple[Blank, ...], Strict(False)] = Field(min_length=1, description="The blanks, in order.")
    points: int = Field(0, ge=0, description="Leave out: a blanks question is worth the sum of its blanks' points.")

    @model_validator(mode="after")
    def _check(self) -> BlanksQuestion:
        _sum_points(self, self.blanks, "blank", "the blanks add up")
        return self


# ----------------------------------------------------------------------------- ordering


class OrderItem(Model):
    """One thing to put in order."""

    id: OptionId
    text: Markdown = Field(description="The item as shown, in Markdown.")


class OrderingQuestion(_Question):
    """Put items in order; partial credit by Kendall's tau (pairs in the right order), floored at 0."""

    type: Literal["ordering"] = Field(description="ordering: put the items in the right order.")
    items: Annotated[tuple[OrderItem, ...], Strict(False)] = Field(
        min_length=3, description="The items IN THE RIGHT ORDER; they are always shown shuffled."
    )
    first: str = Field("first", description="What the first position means, e.g. 'killed first'.")

    @model_validator(mode="after")
    def _check(self) -> OrderingQuestion:
        _unique([i.id for i in self.items], "item")
        return self


# ----------------------------------------------------------------------------- explain (never auto-scored)


class RubricItem(Model):
    """One thing a grader looks for in an explanation, with the points it is worth."""

    id: OptionId
    points: int = Field(1, ge=1, le=100, description="Points a grader gives when the answer meets this item.")
    criterion: Markdown = Field(description="What the answer states, as a grader would check it.")


class ExplainQuestion(_Question):
    """A short free-text explanation that is NEVER scored automatically (docs/quiz.md).

    The learner sees a model answer and the rubric next to their own words (self-assessment);
    instructors grade it by hand from `lab quiz ... --export-manual` or the `lab grade` report.
    `points` are manual points: they are not part of the automatic score or the pass mark.
    """

    manual: ClassVar[bool] = True

    type: Literal["explain"] = Field(description="explain: a few sentences, graded by people, never by labcoat.")
    model_answer: Markdown = Field(description="A full-marks answer, shown after answering.")
    rubric: Annotated[tuple[RubricItem, ...], Strict(False)] = Field(
        min_length=1, description="What a grader looks for; the items' points add up to the question's points."
    )
    points: int = Field(0, ge=0, description="Leave out: the manual points are the sum of the rubric's points.")

    @model_validator(mode="after")
    def _check(self) -> ExplainQuestion:
        _sum_points(self, self.rubric, "rubric item", "the rubric adds up")
        return self


# ----------------------------------------------------------------------------- the quiz

# Every question type's model, in the order the `type` error lists them.
QUESTION_MODELS: tuple[type[_Question], ...] = (
    SingleChoice, MultipleChoice, NumericQuestion, BlanksQuestion, OrderingQuestion, ExplainQuestion,
)


def type_name(model: type[_Question]) -> str:
    """The `type` key of a question model (its Literal)."""
    return str(get_args(model.model_fields["type"].annotation)[0])


_TAGS = {type_name(m): m.__name__ for m in QUESTION_MODELS}


def _question_tag(value: Any) -> str | None:
    # Capitalised tags: the loader drops class-like names from error locations, so errors read
    # `questions[3].choices` rather than `questions[3].single.choices`.
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return _TAGS.get(kind) if isinstance(kind, str) else None


Question = Annotated[
    Union[tuple(Annotated[m, Tag(m.__name__)] for m in QUESTION_MODELS)],  # type: ignore[valid-type]  # noqa: UP007
    Discriminator(
        _question_tag,
        custom_error_type="question_type",
        custom_error_message="'type' must be one of: " + ", ".join(_TAGS) + " (the keyword-scored `text` type "
        "is gone: write `explain`, which people grade; docs/quiz.md)",
    ),
]
ChoiceQuestion = SingleChoice | MultipleChoice
QuestionBase = _Question  # what every question type has (annotations of type-independent code)


class Quiz(Model):
    """quizzes/<id>.yaml: the questions of one lab's quiz."""

    schema_version: int = Field(description="Always 1 for this labcoat.")
    id: LabId = Field(description="Quiz id, always quoted (\"5.10\", not 5.10, which YAML reads as 5.1); usually its lab's id.")
    title: str = Field(min_length=1, description="Shown at the top of the quiz.")
    description: str = Field("", description="Markdown shown before the first question.")
    pass_mark: float = Field(ge=0, le=1, description="Fraction of all points needed to pass, e.g. 0.7.")
    shuffle_questions: bool = Field(True, description="Shuffle the question order (seeded, see --seed).")
    shuffle_choices: bool = Field(True, description="Shuffle choices of questions that allow it (seeded).")
    questions: Annotated[tuple[Question, ...], Strict(False)] = Field(min_length=1, description="The questions.")

    @model_validator(mode="after")
    def _check(self) -> Quiz:
        _unique([q.id for q in self.questions], "question")
        seen: set[str] = set()
        for q in self.questions:
            if q.follows is not None and q.follows not in seen:
                raise ValueError(
                    f"question {q.id!r}: follows {q.follows!r}, which is not a question earlier in this file"
                )
            seen.add(q.id)
        return self

    @property
    def max_points(self) -> int:
        """Points of the automatically scored questions: what the score and the pass mark are made of."""
        return sum(q.points for q in self.questions if not q.manual)

    @property
    def manual_points(self) -> int:
        """Points of the explain questions, graded by people and never part of the automatic score."""
        return sum(q.points for q in self.questions if q.manual)

    def question(self, question_id: str) -> Any:
        """The question with this id (KeyError if there is none)."""
        for q in self.questions:
            if q.id == question_id:
                return q
        raise KeyError(question_id)


__all__ = [
    "Blank",
    "BlanksQuestion",
    "Choice",
    "ExplainQuestion",
    "MultipleChoice",
    "NumericMistake",
    "NumericQuestion",
    "OrderItem",
    "OrderingQuestion",
    "Question",
    "Quiz",
    "RubricItem",
    "SingleChoice",
    "Units",
]
