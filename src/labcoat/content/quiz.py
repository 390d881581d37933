"""The quiz schema: `quizzes/<id>.yaml`, its questions and the free-text rubric.

A quiz is data: the engine (`labcoat.quiz.engine`) scores answers against these models
and never names a question. Five question types share one base and are told apart by
their `type` key (a discriminated union): `single`, `multiple`, `numeric`, `ordering`
and `text`. How each type is scored is documented in docs/quiz.md; the validators below
refuse questions that could not be scored as documented (a single-choice question with
two right answers, an ordering with a repeated item, a rubric regex that does not
compile, ...), each with the offending id in the message.

Sequences are tuples (the models are frozen) but YAML gives lists, so every sequence is
`Strict(False)`: only the container is lax, the items stay strict.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Strict, StringConstraints, Tag, model_validator

from labcoat.content.models import LabId, Model
from labcoat.units import parse_size

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
NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def _unique(ids: list[str], what: str) -> None:
    seen: set[str] = set()
    for item in ids:
        if item in seen:
            raise ValueError(f"{what} id {item!r} is used twice")
        seen.add(item)


class _Question(Model):
    """What every question has."""

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


class NumericMistake(Model):
    """A wrong value learners often give, with feedback that targets that mistake."""

    value: str | int | float = Field(description="The wrong value, in the question's kind (a size or a number).")
    feedback: Markdown = Field(description="Shown when the answer matches this value (within the tolerance).")


class NumericQuestion(_Question):
    """A number or a byte size, right within a tolerance; all or nothing."""

    type: Literal["numeric"] = Field(description="numeric: a number or a size.")
    kind: Literal["number", "bytes"] = Field(
        "number",
        description="bytes: sizes such as 10Gi, 10240M or 10737418240 (binary units, as Docker reads them); "
        "number: a plain number, optionally followed by `unit`.",
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
    mistakes: Annotated[tuple[NumericMistake, ...], Strict(False)] = Field(
        (), description="Common wrong values with targeted feedback."
    )

    @model_validator(mode="after")
    def _check(self) -> NumericQuestion:
        values = [("answer", self.answer), ("tolerance", self.tolerance)]
        values += [(f"mistakes[{i}].value", m.value) for i, m in enumerate(self.mistakes)]
        for where, value in values:
            problem = _numeric_problem(self.kind, value)
            if problem:
                raise ValueError(f"question {self.id!r}: {where}: {problem}")
        if self.kind == "bytes" and self.unit is not None:
            raise ValueError(f"question {self.id!r}: 'unit' is only for kind number; sizes carry their own unit")
        if self.unit is not None and not self.unit.strip():
            raise ValueError(f"question {self.id!r}: 'unit' must not be blank")
        return self


def _numeric_problem(kind: str, value: Any) -> str | None:
    if isinstance(value, bool):
        return "must be a value, not true/false"
    if kind == "bytes":
        if isinstance(value, float):
            return "write a size as text (e.g. 100Mi) or a whole number of bytes"
        try:
            parse_size(value)
        except ValueError as exc:
            return str(exc)
        return None
    if isinstance(value, str) and not NUMBER.match(value.strip()):
        return f"not a number: {value!r}"
    return None


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


# ----------------------------------------------------------------------------- free text


class Concept(Model):
    """One idea a free-text answer must state, how to recognise it and what cancels it."""

    id: OptionId
    description: Markdown = Field(description="The idea in a few words; shown when it is missing.")
    points: int = Field(1, ge=1, le=100, description="Points when the idea is stated (see docs/quiz.md).")
    synonyms: Annotated[tuple[str, ...], Strict(False)] = Field(
        (),
        description="Phrases that state the idea, matched case-insensitively as whole words; a space or "
        "hyphen in a phrase also matches a hyphen, underscore, space or nothing (page cache = page-cache).",
    )
    patterns: Annotated[tuple[str, ...], Strict(False)] = Field(
        (), description="Python regular expressions (case-insensitive) that state the idea."
    )
    contradictions: Annotated[tuple[str, ...], Strict(False)] = Field(
        (),
        description="Regular expressions for statements that contradict the idea; a match cancels the "
        "concept unless a negation word stands just before it (docs/quiz.md).",
    )
    contradiction_feedback: str | None = Field(
        None, description="Shown when a contradiction matched: what is wrong with that statement."
    )

    @model_validator(mode="after")
    def _check(self) -> Concept:
        if not self.synonyms and not self.patterns:
            raise ValueError(f"concept {self.id!r}: give at least one synonym or pattern")
        for field in ("patterns", "contradictions"):
            for pattern in getattr(self, field):
                try:
                    re.compile(pattern, re.IGNORECASE)
                except re.error as exc:
                    raise ValueError(f"concept {self.id!r}: {field}: bad regular expression {pattern!r}: {exc}") from None
        for phrase in self.synonyms:
            if not re.search(r"\w", phrase):
                raise ValueError(f"concept {self.id!r}: synonym {phrase!r} has no letters or digits")
        return self


class TextQuestion(_Question):
    """A short free-text answer scored by a rubric of concepts (docs/quiz.md has the exact rules)."""

    type: Literal["text"] = Field(description="text: a few sentences, scored by a concept rubric.")
    concepts: Annotated[tuple[Concept, ...], Strict(False)] = Field(
        min_length=1, description="The ideas a full answer states; their points may add up to more than `points`."
    )
    model_answer: Markdown = Field(description="A full-marks answer, shown after answering; tests score it.")
    min_words: int = Field(8, ge=0, description="Answers with fewer words count every concept as a fragment.")
    words_per_concept: int = Field(
        4, ge=0, description="A sentence needs this many words per concept it states to count as a sentence."
    )
    max_concepts_in_list: int = Field(
        2, ge=0, description="A comma-separated list (docs/quiz.md) stating more concepts than this is a fragment."
    )
    fragment_credit: float = Field(
        0.5, ge=0, le=1, description="Share of a concept's points when it appears only in fragments (keyword lists)."
    )

    @model_validator(mode="after")
    def _check(self) -> TextQuestion:
        _unique([c.id for c in self.concepts], "concept")
        total = sum(c.points for c in self.concepts)
        if total < self.points:
            raise ValueError(
                f"question {self.id!r}: the concepts add up to {total} points, less than the question's {self.points}"
            )
        return self


# ----------------------------------------------------------------------------- the quiz

_TAGS = {
    "single": "SingleChoice",
    "multiple": "MultipleChoice",
    "numeric": "NumericQuestion",
    "ordering": "OrderingQuestion",
    "text": "TextQuestion",
}


def _question_tag(value: Any) -> str | None:
    # Capitalised tags: the loader drops class-like names from error locations, so errors read
    # `questions[3].choices` rather than `questions[3].single.choices`.
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return _TAGS.get(kind) if isinstance(kind, str) else None


Question = Annotated[
    Annotated[SingleChoice, Tag("SingleChoice")]
    | Annotated[MultipleChoice, Tag("MultipleChoice")]
    | Annotated[NumericQuestion, Tag("NumericQuestion")]
    | Annotated[OrderingQuestion, Tag("OrderingQuestion")]
    | Annotated[TextQuestion, Tag("TextQuestion")],
    Discriminator(
        _question_tag,
        custom_error_type="question_type",
        custom_error_message="'type' must be one of: " + ", ".join(_TAGS),
    ),
]
ChoiceQuestion = SingleChoice | MultipleChoice


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
        return sum(q.points for q in self.questions)

    def question(self, question_id: str) -> Any:
        """The question with this id (KeyError if there is none)."""
        for q in self.questions:
            if q.id == question_id:
                return q
        raise KeyError(question_id)


__all__ = [
    "Choice",
    "Concept",
    "MultipleChoice",
    "NumericMistake",
    "NumericQuestion",
    "OrderItem",
    "OrderingQuestion",
    "Question",
    "Quiz",
    "SingleChoice",
    "TextQuestion",
]
