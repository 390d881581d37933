"""Question types in one registry: each type's content model and how it is read, scored, shown and asked.

Over 500 lines on purpose: one class per question type, so a type's whole behaviour reads in one place.

`QUESTION_TYPES` maps a question's `type` key to its `QuestionType`. The engine, the answers
files and the terminal quiz never branch on a type: they ask the registry. Adding a type is its
model in `labcoat.content.quiz` (listed in QUESTION_MODELS) and one `@register`ed class here,
plus its tests; `tests/unit/quiz/test_quiz_types.py` fails while either side is missing.

The scoring rules are docs/quiz.md's; the engine (`labcoat.quiz.engine`) keeps what the types
share (results, number and token checks, Kendall's tau) and stays free of I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from labcoat.content.quiz import (
    QUESTION_MODELS,
    BlanksQuestion,
    ExplainQuestion,
    MultipleChoice,
    NumericQuestion,
    OrderingQuestion,
    Quiz,
    SingleChoice,
    type_name,
)
from labcoat.grading.reports import clean
from labcoat.quiz.engine import (
    MAX_EXPLAIN_CHARS,
    Answer,
    PresentedQuestion,
    QuestionResult,
    _ids,
    _kind,
    _known,
    _one_line,
    _rng,
    _value_text,
    as_number,
    check_token,
    check_value,
    explain_result,
    fmt,
    kendall_tau,
    normalize_answer,
    unit_rule,
    value_hint,
)
from labcoat.quiz.values import AnswerFormatError

if TYPE_CHECKING:
    from rich.console import Console

Ask = Callable[[str], str]
SKIP = "-"  # typed at a prompt: skip the question (or leave a blank empty)


class QuestionType:
    """What the engine, answers files and the terminal quiz need of one question type."""

    name: ClassVar[str]  # the `type` key in quiz files
    title: ClassVar[str]  # shown to people: "single choice"
    model: ClassVar[type]  # the content model (labcoat.content.quiz)

    # ---- reading and scoring (engine)

    def normalize(self, q: Any, raw: Any) -> Answer:
        """A non-empty, cleaned answer in normal form, or AnswerFormatError saying what is wrong."""
        raise NotImplementedError

    def score(self, q: Any, answer: Any) -> QuestionResult:
        """Score an answer in normal form (never None)."""
        raise NotImplementedError

    def options(self, quiz: Quiz, q: Any, seed: int) -> tuple[str, ...]:
        """Choice or item ids in the order shown for this seed (none for types without options)."""
        return ()

    def parse_typed(self, pq: PresentedQuestion, text: str) -> Answer:
        """What a learner typed at the prompt (stripped, not empty), in normal form."""
        return normalize_answer(pq.question, text)

    # ---- showing and asking (terminal)

    def option_texts(self, q: Any) -> dict[str, str]:
        """Option id -> its Markdown, for the options shown with the question."""
        return {}

    def instructions(self, pq: PresentedQuestion) -> str:
        """What to type for this question (without the skip hint)."""
        raise NotImplementedError

    def ask(self, console: Console, pq: PresentedQuestion, ask: Ask, typed: Callable[[], Answer]) -> Answer:
        """Ask the question; `typed` asks for one line until it can be read. Override to ask in parts."""
        return typed()

    # ---- answers files

    def format_hint(self, q: Any) -> str:
        """How to write the answer in an answers file (shown with an answer it could not read)."""
        raise NotImplementedError

    def template(self, pq: PresentedQuestion) -> list[str]:
        """Comment lines of the answers-file template after the prompt: the options and what to write."""
        raise NotImplementedError


QUESTION_TYPES: dict[str, QuestionType] = {}
T = TypeVar("T", bound=type[QuestionType])


def register(cls: T) -> T:
    """Register a question type under its model's `type` key."""
    name = type_name(cls.model)
    if name in QUESTION_TYPES:
        raise ValueError(f"question type {name!r} is registered twice")
    cls.name = name
    QUESTION_TYPES[name] = cls()
    return cls


def question_type(question: Any) -> QuestionType:
    """The registered type of a question (or of a `type` key)."""
    return QUESTION_TYPES[question if isinstance(question, str) else question.type]


class _TypeNames(Mapping[str, str]):
    """type key -> the name shown to people, read from the registry."""

    def __getitem__(self, key: str) -> str:
        return QUESTION_TYPES[key].title

    def __iter__(self) -> Any:
        return iter(QUESTION_TYPES)

    def __len__(self) -> int:
        return len(QUESTION_TYPES)


TYPE_NAMES: Mapping[str, str] = _TypeNames()


def _choice_line(q: SingleChoice | MultipleChoice, cid: str) -> str:
    choice = next(c for c in q.choices if c.id == cid)
    return f"**{cid}**: {_one_line(choice.text)}"


def _letters(pq: PresentedQuestion, text: str) -> tuple[list[str], list[str]]:
    """(typed letters, the option ids they pick): letters refer to the labels shown."""
    labels = {label.lower(): opt for label, opt in zip(pq.labels, pq.options, strict=True)}
    tokens = [t for t in re.split(r"[\s,]+", text.lower()) if t]
    if len(tokens) == 1 and len(tokens[0]) > 1 and all(ch in labels for ch in tokens[0]):
        tokens = list(tokens[0])  # "ac" or "cab"
    for t in tokens:
        if t not in labels:
            shown = ", ".join(pq.labels)
            raise AnswerFormatError(f"{t.upper()!r} is not one of the letters shown ({shown})")
    return tokens, [labels[t] for t in tokens]


def _shuffled_choices(quiz: Quiz, q: SingleChoice | MultipleChoice, seed: int) -> tuple[str, ...]:
    ids = [c.id for c in q.choices]
    if quiz.shuffle_choices and q.shuffle:
        _rng(quiz, seed, q.id).shuffle(ids)
    return tuple(ids)


def _choice_template(pq: PresentedQuestion) -> list[str]:
    by_id = {c.id: c for c in pq.question.choices}
    return ["  #", *(f"  #   {cid}) {_one_line(by_id[cid].text)}" for cid in pq.options)]


def comment_lines(text: str, indent: str = "  # ") -> list[str]:
    """Text as YAML comment lines of an answers-file template."""
    return [(indent + line).rstrip() for line in text.strip().splitlines()]


# ----------------------------------------------------------------------------- single choice


@register
class Single(QuestionType):
    title = "single choice"
    model = SingleChoice

    def normalize(self, q: SingleChoice, raw: Any) -> Answer:
        valid = [c.id for c in q.choices]
        if isinstance(raw, list | tuple):
            raise AnswerFormatError(f"pick one choice, not a list; write e.g. {valid[0]}")
        if not isinstance(raw, str):
            raise AnswerFormatError(f"expected one choice id ({', '.join(valid)}), found {_kind(raw)}")
        choice = raw.strip()
        _known([choice], valid, "choice")
        return choice

    def score(self, q: SingleChoice, answer: str) -> QuestionResult:
        picked = next(c for c in q.choices if c.id == answer)
        right = next(c for c in q.choices if c.correct)
        lines = []
        if picked.correct:
            lines.append("Correct.")
        else:
            lines.append(f"Not quite: you picked {_choice_line(q, answer)}")
        if picked.feedback:
            lines.append(picked.feedback.strip())
        if not picked.correct:
            lines.append(f"The answer is {_choice_line(q, right.id)}")
        points = Fraction(q.points) if picked.correct else Fraction(0)
        return QuestionResult(q.id, q.type, points, q.points, picked.correct, "\n\n".join(lines))

    def options(self, quiz: Quiz, q: SingleChoice, seed: int) -> tuple[str, ...]:
        return _shuffled_choices(quiz, q, seed)

    def parse_typed(self, pq: PresentedQuestion, text: str) -> Answer:
        _, picked = _letters(pq, text)
        if len(picked) != 1:
            raise AnswerFormatError("pick exactly one letter")
        return normalize_answer(pq.question, picked[0])

    def option_texts(self, q: SingleChoice) -> dict[str, str]:
        return {c.id: c.text for c in q.choices}

    def instructions(self, pq: PresentedQuestion) -> str:
        span = f"{pq.labels[0]}–{pq.labels[-1]}" if pq.labels else ""
        return f"Type one letter ({span})."

    def format_hint(self, q: SingleChoice) -> str:
        return f"write one of: {', '.join(c.id for c in q.choices)}"

    def template(self, pq: PresentedQuestion) -> list[str]:
        return [*_choice_template(pq), "  # Answer: one choice id."]


# ----------------------------------------------------------------------------- multiple choice


@register
class Multiple(QuestionType):
    title = "multiple choice"
    model = MultipleChoice

    def normalize(self, q: MultipleChoice, raw: Any) -> Answer:
        valid = [c.id for c in q.choices]
        picks = _ids(raw, "tick all that apply")
        _known(picks, valid, "choice")
        dupes = sorted({p for p in picks if picks.count(p) > 1})
        if dupes:
            raise AnswerFormatError(f"choice {dupes[0]!r} is ticked twice")
        return tuple(sorted(picks, key=valid.index))

    def score(self, q: MultipleChoice, picks: tuple[str, ...]) -> QuestionResult:
        # docs/quiz.md "Multiple choice": points * max(0, hits/C - wrong/W).
        right = [c.id for c in q.choices if c.correct]
        wrong = [c.id for c in q.choices if not c.correct]
        hits = [p for p in picks if p in right]
        bad = [p for p in picks if p in wrong]
        missed = [c for c in right if c not in picks]
        share = Fraction(len(hits), len(right)) - Fraction(len(bad), len(wrong))
        share = max(Fraction(0), share)
        points = q.points * share
        correct = not bad and not missed
        lines = [
            "Correct: you ticked every right choice and nothing else."
            if correct
            else f"Right ticks {len(hits)} of {len(right)}, wrong ticks {len(bad)} of {len(wrong)}: "
            f"{len(hits)}/{len(right)} − {len(bad)}/{len(wrong)} → {fmt(points)} of {q.points} point(s)."
        ]
        by_id = {c.id: c for c in q.choices}
        for cid in bad:
            extra = f" {by_id[cid].feedback.strip()}" if by_id[cid].feedback else ""  # type: ignore[union-attr]
            lines.append(f"- ✗ {_choice_line(q, cid)} is wrong.{extra}")
        for cid in missed:
            extra = f" {by_id[cid].feedback.strip()}" if by_id[cid].feedback else ""  # type: ignore[union-attr]
            lines.append(f"- ✗ missed {_choice_line(q, cid)}{extra}")
        return QuestionResult(q.id, q.type, points, q.points, correct, "\n".join(lines))

    def options(self, quiz: Quiz, q: MultipleChoice, seed: int) -> tuple[str, ...]:
        return _shuffled_choices(quiz, q, seed)

    def parse_typed(self, pq: PresentedQuestion, text: str) -> Answer:
        tokens, picked = _letters(pq, text)
        if len(set(tokens)) != len(tokens):
            raise AnswerFormatError("give each letter once")
        return normalize_answer(pq.question, picked)

    def option_texts(self, q: MultipleChoice) -> dict[str, str]:
        return {c.id: c.text for c in q.choices}

    def instructions(self, pq: PresentedQuestion) -> str:
        return "Type every letter that applies, e.g. A C. Wrong ticks cost points."

    def format_hint(self, q: MultipleChoice) -> str:
        return f"write a list of choice ids, e.g. [{', '.join(c.id for c in q.choices[:2])}]"

    def template(self, pq: PresentedQuestion) -> list[str]:
        return [*_choice_template(pq),
                "  # Answer: a list of every choice id that applies, e.g. [x, y]. Wrong ticks cost points."]


# ----------------------------------------------------------------------------- numeric


@register
class Numeric(QuestionType):
    title = "number"
    model = NumericQuestion

    def normalize(self, q: NumericQuestion, raw: Any) -> Answer:
        return _value_text(q, raw)

    def score(self, q: NumericQuestion, text: str) -> QuestionResult:
        correct, feedback = check_value(q, text)
        points = Fraction(q.points) if correct else Fraction(0)
        return QuestionResult(q.id, q.type, points, q.points, correct, feedback)

    def instructions(self, pq: PresentedQuestion) -> str:
        q = pq.question
        return f"Type a {value_hint(q)}." + (f" {unit_rule(q)}" if q.kind == "bytes" else "")

    def format_hint(self, q: NumericQuestion) -> str:
        return f"write a {value_hint(q)}" + (f". {unit_rule(q)}" if q.kind == "bytes" else "")

    def template(self, pq: PresentedQuestion) -> list[str]:
        q = pq.question
        out = [f"  # Answer: a {value_hint(q)}."]
        if q.kind == "bytes":
            out += comment_lines(unit_rule(q), "  # Units: ")
        return out


# ----------------------------------------------------------------------------- fill in the blanks


@register
class Blanks(QuestionType):
    title = "fill in the blanks"
    model = BlanksQuestion

    def normalize(self, q: BlanksQuestion, raw: Any) -> Answer:
        """One text per blank, in the question's order ("" when left empty); a mapping by id or a list."""
        ids = [b.id for b in q.blanks]
        if isinstance(raw, Mapping):
            unknown = [k for k in raw if k not in ids]
            if unknown:
                raise AnswerFormatError(f"unknown blank {unknown[0]!r}; the blanks are: {', '.join(ids)}")
            values = [raw.get(i) for i in ids]
        elif isinstance(raw, list | tuple):
            if len(raw) != len(ids):
                raise AnswerFormatError(
                    f"{len(raw)} value(s) for {len(ids)} blanks; give one per blank: {', '.join(ids)}")
            values = list(raw)
        elif isinstance(raw, str) and len(ids) == 1:
            values = [raw]
        else:
            raise AnswerFormatError(
                f"expected a mapping of blank id to answer ({', '.join(ids)}), found {_kind(raw)}")
        out = []
        for blank, value in zip(q.blanks, values, strict=True):
            if value is None or (isinstance(value, str) and not value.strip()):
                out.append("")
            elif blank.kind == "token":
                if not isinstance(value, str):
                    raise AnswerFormatError(f"blank {blank.id!r}: expected a short text, found {_kind(value)}")
                out.append(clean(value).strip())
            else:
                try:
                    out.append(_value_text(blank, value))
                except AnswerFormatError as exc:
                    raise AnswerFormatError(f"blank {blank.id!r}: {exc}") from None
        return tuple(out) if any(out) else None

    def score(self, q: BlanksQuestion, answers: tuple[str, ...]) -> QuestionResult:
        # docs/quiz.md "Fill in the blanks": every blank all or nothing, points add up.
        points = Fraction(0)
        lines = []
        details = []
        for blank, text in zip(q.blanks, answers, strict=True):
            if not text:
                ok, feedback = False, "not answered."
            elif blank.kind == "token":
                ok, feedback = check_token(blank, text)
            else:
                ok, feedback = check_value(blank, text)
            earned = Fraction(blank.points) if ok else Fraction(0)
            points += earned
            lines.append(
                f"- {'✓' if ok else '✗'} {_one_line(blank.label)}: {feedback} ({fmt(earned)} of {blank.points})")
            details.append({"blank": blank.id, "correct": ok, "points": as_number(earned), "max_points": blank.points})
        correct = points == q.points
        head = "Correct: every blank is right." if correct else f"{fmt(points)} of {q.points} point(s)."
        return QuestionResult(q.id, q.type, points, q.points, correct, head + "\n" + "\n".join(lines),
                              details=tuple(details))

    def parse_typed(self, pq: PresentedQuestion, text: str) -> Answer:
        raise AnswerFormatError("a blanks question is asked one blank at a time")

    def instructions(self, pq: PresentedQuestion) -> str:
        return f"Fill in {len(pq.question.blanks)} blank(s), one at a time; each is checked exactly."

    def ask(self, console: Console, pq: PresentedQuestion, ask: Ask, typed: Callable[[], Answer]) -> Answer:
        """Each blank in turn ('-' or nothing leaves it empty); every value is checked readable when typed."""
        from rich.markdown import Markdown

        q = pq.question
        values: dict[str, str] = {}
        for blank in q.blanks:
            rule = f" {unit_rule(blank)}" if blank.kind == "bytes" else ""
            what = "a short token (exact)" if blank.kind == "token" else f"a {value_hint(blank)}"
            console.print(Markdown(f"{blank.label.strip()}: {what}.{rule}"), style="dim")
            while True:
                entry = ask(blank.id).strip()
                if entry in ("", SKIP):
                    break
                try:
                    normalize_answer(q, {blank.id: entry})
                except AnswerFormatError as exc:
                    console.print(f"[yellow]{exc}.[/]")
                    continue
                values[blank.id] = entry
                break
        return normalize_answer(q, values)

    def format_hint(self, q: BlanksQuestion) -> str:
        return "write a mapping of blank id to answer: {" + ", ".join(f"{b.id}: ..." for b in q.blanks) + "}"

    def template(self, pq: PresentedQuestion) -> list[str]:
        q = pq.question
        out = ["  #"]
        for b in q.blanks:
            what = f"a {value_hint(b)}" if b.kind != "token" else "a short token, matched exactly"
            out.append(f"  #   {b.id}: {_one_line(b.label)} ({what}, {b.points} pt)")
            if b.kind == "bytes":
                out += comment_lines(unit_rule(b), "  #     Units: ")
        out.append("  # Answer: a mapping of blank id to answer:")
        out.append(f"  #   {q.id}: {{" + ", ".join(f"{b.id}: ..." for b in q.blanks) + "}")
        return out


# ----------------------------------------------------------------------------- ordering


@register
class Ordering(QuestionType):
    title = "ordering"
    model = OrderingQuestion

    def normalize(self, q: OrderingQuestion, raw: Any) -> Answer:
        valid = [i.id for i in q.items]
        order = _ids(raw, "ordering")
        _known(order, valid, "item")
        dupes = sorted({p for p in order if order.count(p) > 1})
        if dupes:
            raise AnswerFormatError(f"item {dupes[0]!r} appears twice; list each item exactly once")
        missing = [i for i in valid if i not in order]
        if missing:
            raise AnswerFormatError(
                f"item(s) {', '.join(missing)} missing; list all {len(valid)} items: {', '.join(valid)}"
            )
        return order

    def score(self, q: OrderingQuestion, order: tuple[str, ...]) -> QuestionResult:
        # docs/quiz.md "Ordering": points * max(0, tau), tau = (concordant - discordant) / pairs.
        truth = [i.id for i in q.items]
        concordant, pairs, tau = kendall_tau(order, truth)
        points = q.points * max(Fraction(0), tau)
        correct = tuple(truth) == order
        by_id = {i.id: i for i in q.items}
        if correct:
            head = "Correct: every item is in its place."
        else:
            head = (
                f"{concordant} of {pairs} pairs are in the right order (Kendall's τ = {fmt(tau)}) "
                f"→ {fmt(points)} of {q.points} point(s). The right order ({q.first} first):"
            )
            head += "\n" + "\n".join(f"{n}. {_one_line(by_id[i].text)}" for n, i in enumerate(truth, 1))
        return QuestionResult(q.id, q.type, points, q.points, correct, head)

    def options(self, quiz: Quiz, q: OrderingQuestion, seed: int) -> tuple[str, ...]:
        truth = [i.id for i in q.items]
        ids = list(truth)
        _rng(quiz, seed, q.id).shuffle(ids)
        if ids == truth:  # never show the answer: rotate by one
            ids = ids[1:] + ids[:1]
        return tuple(ids)

    def parse_typed(self, pq: PresentedQuestion, text: str) -> Answer:
        tokens, picked = _letters(pq, text)
        if len(set(tokens)) != len(tokens):
            raise AnswerFormatError("give each letter once")
        if len(tokens) != len(pq.labels):
            raise AnswerFormatError(f"give all {len(pq.labels)} letters in order, e.g. {' '.join(reversed(pq.labels))}")
        return normalize_answer(pq.question, picked)

    def option_texts(self, q: OrderingQuestion) -> dict[str, str]:
        return {i.id: i.text for i in q.items}

    def instructions(self, pq: PresentedQuestion) -> str:
        q = pq.question
        return f"Type all {len(pq.options)} letters in order, {q.first} first, e.g. {' '.join(reversed(pq.labels))}."

    def format_hint(self, q: OrderingQuestion) -> str:
        return f"write every item id once, in order: [{', '.join(sorted(i.id for i in q.items))}] rearranged"

    def template(self, pq: PresentedQuestion) -> list[str]:
        q = pq.question
        by_id = {i.id: i for i in q.items}
        return ["  #", *(f"  #   {iid}: {_one_line(by_id[iid].text)}" for iid in pq.options),
                f"  # Answer: a list of all {len(q.items)} item ids, {q.first} first."]


# ----------------------------------------------------------------------------- explain (never auto-scored)


@register
class Explain(QuestionType):
    title = "explain (graded by people)"
    model = ExplainQuestion

    def normalize(self, q: ExplainQuestion, raw: Any) -> Answer:
        if not isinstance(raw, str):
            raise AnswerFormatError(f"expected a few sentences of text, found {_kind(raw)}; use a block (key: |)")
        if len(raw) > MAX_EXPLAIN_CHARS:
            raise AnswerFormatError(f"{len(raw)} characters; an explanation has at most {MAX_EXPLAIN_CHARS}")
        return raw.strip()

    def score(self, q: ExplainQuestion, answer: str) -> QuestionResult:
        return explain_result(q, answer)

    def instructions(self, pq: PresentedQuestion) -> str:
        return ("Explain in two or three sentences on one line. This is not scored automatically: you then see "
                "a model answer and the rubric to compare with, and an instructor grades it.")

    def format_hint(self, q: ExplainQuestion) -> str:
        return "write a few sentences; use a block (key: |) for several lines"

    def template(self, pq: PresentedQuestion) -> list[str]:
        q = pq.question
        return [f"  # Answer: a few sentences, graded by people ({q.points} manual points), e.g.",
                f"  #   {q.id}: |",
                "  #     Your first sentence. Your second sentence."]


_missing = [type_name(m) for m in QUESTION_MODELS if type_name(m) not in QUESTION_TYPES]
if _missing:  # pragma: no cover - a new model without its behaviour fails at import, in every test
    raise ImportError(f"question type(s) {', '.join(_missing)} have a model but no registered QuestionType")
