"""Pure quiz scoring: answers in, points and feedback out. No I/O, no printing.

Points are `fractions.Fraction`, so partial credit is exact (1/3 is 1/3, not
0.333...) and a test can compare hand-computed scores with `==`. The rules are the ones
in docs/quiz.md; the numbers in this module's comments refer to its sections.

Answers arrive in one normal form (`Answer`): None when unanswered, a string (a choice
id, a number or size as written, a free-text answer) or a tuple of ids (multiple choice,
ordering). `normalize_answer` turns what a YAML file or a caller gives into that form
and raises `AnswerFormatError` with a plain message when it cannot.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from typing import Any

from labcoat.content.quiz import (
    NUMBER,
    Concept,
    MultipleChoice,
    NumericQuestion,
    OrderingQuestion,
    Quiz,
    SingleChoice,
    TextQuestion,
)
from labcoat.units import human, parse_size

Answer = str | tuple[str, ...] | None
AnyQuestion = SingleChoice | MultipleChoice | NumericQuestion | OrderingQuestion | TextQuestion

TYPE_NAMES = {
    "single": "single choice",
    "multiple": "multiple choice",
    "numeric": "number",
    "ordering": "ordering",
    "text": "short text",
}


class AnswerFormatError(ValueError):
    """An answer that cannot be read for its question: wrong shape, unknown id, not a number."""


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
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(question, SingleChoice):
        valid = [c.id for c in question.choices]
        if isinstance(raw, list | tuple):
            raise AnswerFormatError(f"pick one choice, not a list; write e.g. {valid[0]}")
        if not isinstance(raw, str):
            raise AnswerFormatError(f"expected one choice id ({', '.join(valid)}), found {_kind(raw)}")
        choice = raw.strip()
        _known([choice], valid, "choice")
        return choice
    if isinstance(question, MultipleChoice):
        valid = [c.id for c in question.choices]
        picks = _ids(raw, "tick all that apply")
        _known(picks, valid, "choice")
        dupes = sorted({p for p in picks if picks.count(p) > 1})
        if dupes:
            raise AnswerFormatError(f"choice {dupes[0]!r} is ticked twice")
        return tuple(sorted(picks, key=valid.index))
    if isinstance(question, OrderingQuestion):
        valid = [i.id for i in question.items]
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
    if isinstance(question, NumericQuestion):
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            raise AnswerFormatError(f"expected a {_numeric_hint(question)}, found {_kind(raw)}")
        text = raw if isinstance(raw, str) else repr(raw)
        parse_numeric(question, text)  # raises AnswerFormatError
        return text.strip()
    if isinstance(question, TextQuestion):
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            raise AnswerFormatError(f"expected text (a few sentences), found {_kind(raw)}")
        return str(raw)
    raise TypeError(f"not a question: {question!r}")  # pragma: no cover


def _numeric_hint(q: NumericQuestion) -> str:
    if q.kind == "bytes":
        return "size such as 10Gi, 10240M or 10737418240"
    return f"number{f' (the unit {q.unit} is optional)' if q.unit else ''}"


def parse_numeric(q: NumericQuestion, raw: str | int | float) -> Fraction:
    """The value of a numeric answer: bytes for kind bytes, else the number (unit stripped)."""
    if isinstance(raw, bool):
        raise AnswerFormatError(f"expected a {_numeric_hint(q)}, found {_kind(raw)}")
    if q.kind == "bytes":
        if isinstance(raw, int):
            value = Fraction(raw)
        else:
            text = str(raw).strip().replace("_", "")
            try:
                value = Fraction(parse_size(text))
            except ValueError:
                raise AnswerFormatError(f"not a size: {text!r}; write e.g. 10Gi, 10240M or 10737418240") from None
        return value
    if isinstance(raw, int | float):
        return to_fraction(raw)
    text = unicodedata.normalize("NFKC", raw).strip().replace("\u2212", "-").replace("_", "")
    if q.unit and text.lower().endswith(q.unit.lower()):
        text = text[: -len(q.unit)].strip()
    if not NUMBER.match(text):
        unit = f" (optionally followed by {q.unit})" if q.unit else ""
        raise AnswerFormatError(f"not a number: {raw!r}; write a plain number such as 42 or -0.5{unit}")
    return Fraction(text)


# ----------------------------------------------------------------------------- scoring


def score_answer(question: AnyQuestion, answer: Any) -> QuestionResult:
    """Score one answer (normal form or raw; see normalize_answer) against its question."""
    answer = normalize_answer(question, answer)
    if answer is None:
        return QuestionResult(
            question.id, question.type, Fraction(0), question.points, False, "Not answered.", answered=False
        )
    if isinstance(question, SingleChoice):
        assert isinstance(answer, str)
        return _score_single(question, answer)
    if isinstance(question, MultipleChoice):
        assert isinstance(answer, tuple)
        return _score_multiple(question, answer)
    if isinstance(question, NumericQuestion):
        assert isinstance(answer, str)
        return _score_numeric(question, answer)
    if isinstance(question, OrderingQuestion):
        assert isinstance(answer, tuple)
        return _score_ordering(question, answer)
    assert isinstance(answer, str)
    return score_text(question, answer)


def score_quiz(quiz: Quiz, answers: Mapping[str, Any]) -> QuizResult:
    """Score a mapping of question id -> answer; questions without an entry are unanswered."""
    known = {q.id for q in quiz.questions}
    for qid in answers:
        if qid not in known:
            raise AnswerFormatError(f"quiz {quiz.id} has no question {qid!r}")
    results = tuple(score_answer(q, answers.get(q.id)) for q in quiz.questions)
    return QuizResult(quiz.id, quiz.title, results, to_fraction(quiz.pass_mark))


def _choice_line(q: SingleChoice | MultipleChoice, cid: str) -> str:
    choice = next(c for c in q.choices if c.id == cid)
    return f"**{cid}**: {_one_line(choice.text)}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _score_single(q: SingleChoice, answer: str) -> QuestionResult:
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


def _score_multiple(q: MultipleChoice, picks: tuple[str, ...]) -> QuestionResult:
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
        extra = f" {by_id[cid].feedback.strip()}" if by_id[cid].feedback else ""
        lines.append(f"- ✗ {_choice_line(q, cid)} is wrong.{extra}")
    for cid in missed:
        extra = f" {by_id[cid].feedback.strip()}" if by_id[cid].feedback else ""
        lines.append(f"- ✗ missed {_choice_line(q, cid)}{extra}")
    return QuestionResult(q.id, q.type, points, q.points, correct, "\n".join(lines))


def _show_numeric(q: NumericQuestion, value: Fraction) -> str:
    if q.kind == "bytes":
        return f"{int(value)} bytes ({human(int(value))})"
    return f"{fmt(value)}{q.unit or ''}"


def _score_numeric(q: NumericQuestion, text: str) -> QuestionResult:
    value = parse_numeric(q, text)
    target = parse_numeric(q, q.answer)
    tolerance = max(parse_numeric(q, q.tolerance), abs(target) * to_fraction(q.relative_tolerance))
    correct = abs(value - target) <= tolerance
    within = f" (within ±{_show_numeric(q, tolerance)})" if tolerance else ""
    if correct:
        feedback = f"Correct: {_show_numeric(q, value)}{within}."
    else:
        direction = "too high" if value > target else "too low"
        feedback = f"You answered {_show_numeric(q, value)}, {direction}; the answer is {_show_numeric(q, target)}{within}."
        for mistake in q.mistakes:
            if abs(value - parse_numeric(q, mistake.value)) <= tolerance:
                feedback += "\n\n" + mistake.feedback.strip()
                break
    points = Fraction(q.points) if correct else Fraction(0)
    return QuestionResult(q.id, q.type, points, q.points, correct, feedback)


def kendall_tau(order: Sequence[str], truth: Sequence[str]) -> tuple[int, int, Fraction]:
    """(concordant pairs, all pairs, tau) of a permutation `order` against `truth`."""
    rank = {item: i for i, item in enumerate(order)}
    n = len(truth)
    pairs = n * (n - 1) // 2
    concordant = sum(1 for i in range(n) for j in range(i + 1, n) if rank[truth[i]] < rank[truth[j]])
    tau = Fraction(concordant - (pairs - concordant), pairs) if pairs else Fraction(1)
    return concordant, pairs, tau


def _score_ordering(q: OrderingQuestion, order: tuple[str, ...]) -> QuestionResult:
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


# ----------------------------------------------------------------------------- free text
# docs/quiz.md "Free text" describes these rules word for word; keep the two in step.

NEGATIONS = frozenset(
    ["not", "no", "never", "nor", "without", "cannot", "myth", "myths", "wrong", "wrongly", "false", "falsely", "untrue", "incorrect", "incorrectly", "misconception", "mistake", "mistaken", "mistakenly", "rather", "instead"]
)
VERBS = frozenset(
    ["am", "is", "are", "was", "were", "be", "been", "being", "has", "have", "had", "having", "do", "does", "did", "done", "doing", "can", "could", "will", "would", "shall", "should", "may", "might", "must", "it's", "that's", "there's", "here's", "what's", "who's", "let's", "they're", "we're", "you're", "i'm", "i've", "we've", "they've", "it'll", "get", "gets", "got", "gotten", "make", "makes", "made", "uses", "used", "count", "counts", "counted", "show", "shows", "showed", "shown", "mean", "means", "meant", "kills", "killed", "die", "dies", "died", "need", "needs", "needed", "go", "goes", "went", "gone", "take", "takes", "took", "taken", "keep", "keeps", "kept", "run", "runs", "ran", "reach", "reaches", "reached", "include", "includes", "included", "exceed", "exceeds", "exceeded", "matter", "matters", "mattered", "fit", "fits", "see", "sees", "saw", "seen", "look", "looks", "looked", "watch", "watches", "watched", "reclaim", "reclaims", "reclaimed", "frees", "freed", "drop", "drops", "dropped", "swaps", "swapped", "evict", "evicts", "evicted", "charged", "write", "writes", "wrote", "written", "read", "reads", "grow", "grows", "grew", "grown", "allocate", "allocates", "allocated", "fill", "fills", "filled", "stalled", "wait", "waits", "waited", "slows", "slowed", "crashed", "measured", "reported", "tell", "tells", "told", "say", "says", "said", "happen", "happens", "happened", "cause", "causes", "caused", "become", "becomes", "became", "stay", "stays", "stayed", "leave", "leaves", "left", "give", "gives", "gave", "given", "let", "lets", "try", "tries", "tried", "protect", "protects", "protected", "prefer", "prefers", "want", "wants", "rise", "rises", "rose", "fall", "falls", "fell", "add", "adds", "added", "subtract", "subtracts", "ignore", "ignores", "ignored", "pick", "picks", "picked", "choose", "chooses", "chose", "chosen", "select", "selects", "selected", "restarted", "fail", "fails", "failed", "belong", "belongs", "consider", "considers", "shrink", "shrinks", "shrank", "indicate", "indicates", "indicated", "sampled", "missed", "triggers", "triggered", "sends", "sent"]
)
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'_/.%+-]*")
_ED = re.compile(r"[A-Za-z][a-z]{2,}ed")
_SPLIT = re.compile(r"(?<=[.!?;])\s+")
_PARAGRAPH = re.compile(r"\n[ \t]*\n\s*|\n(?=[ \t]*(?:[-*•+]|\d+[.)])[ \t]+)")
_BULLET = re.compile(r"^\s*(?:[-*•+]|\d+[.)])\s+")
_ABBREV = re.compile(r"\b(e\.g|i\.e|vs|cf|etc)\.", re.IGNORECASE)


@dataclass(frozen=True)
class Sentence:
    """One sentence of an answer and what the rubric saw in it."""

    text: str
    words: int
    has_verb: bool
    concepts: tuple[str, ...] = ()
    well_formed: bool = False
    is_list: bool = False


@dataclass(frozen=True)
class ConceptResult:
    """stated / fragment / contradicted / missing, with the points it earned and the text that decided it."""

    id: str
    status: str
    points: Fraction
    evidence: str = ""


@dataclass(frozen=True)
class TextAnalysis:
    words: int
    sentences: tuple[Sentence, ...]
    concepts: tuple[ConceptResult, ...] = field(default=())


def normalize_text(text: str) -> str:
    """NFKC, straight quotes and hyphens, abbreviations that do not end a sentence."""
    text = unicodedata.normalize("NFKC", text)
    for a, b in (("\u2019", "'"), ("\u2018", "'"), ("\u201c", '"'), ("\u201d", '"'), ("\u2013", "-"), ("\u2014", "-"), ("\u2212", "-")):
        text = text.replace(a, b)
    return _ABBREV.sub(lambda m: m.group(1).replace(".", ""), text)


def split_sentences(text: str) -> list[str]:
    """Sentences: split at blank lines and list items, then after . ! ? ; and a space; bullets stripped.

    A single line break (text wrapped in a YAML block or an editor) does not end a sentence.
    """
    out = []
    for block in _PARAGRAPH.split(normalize_text(text)):
        block = " ".join(_BULLET.sub("", block).split())
        for piece in _SPLIT.split(block):
            piece = piece.strip()
            if piece:
                out.append(piece)
    return out


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def is_list(sentence: str) -> bool:
    """At least 4 comma-separated pieces, more than half of them without a verb."""
    pieces = [p for p in sentence.split(",") if words(p)]
    verbless = sum(1 for p in pieces if not has_verb(p))
    return len(pieces) >= 4 and verbless * 2 > len(pieces)


def has_verb(text: str) -> bool:
    """True when a word is in VERBS, ends in n't, or looks like a past tense (lower-case, -ed)."""
    for word in words(text):
        w = word.rstrip(".'-/%+").lower()
        if w in VERBS or w.endswith("n't") or _ED.fullmatch(word.rstrip(".'-/%+")):
            return True
    return False


@lru_cache(maxsize=4096)
def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


@lru_cache(maxsize=4096)
def synonym_regex(phrase: str) -> re.Pattern[str]:
    """A phrase as a regex: whole words, any case, space/hyphen/underscore interchangeable, optional plural."""
    tokens = [re.escape(t) for t in re.split(r"[\s_-]+", phrase.strip()) if t]
    body = r"[\s_-]*".join(tokens)
    return re.compile(rf"(?<!\w){body}(?:e?s)?(?!\w)", re.IGNORECASE)


def _positive(concept: Concept, sentence: str) -> str | None:
    for phrase in concept.synonyms:
        m = synonym_regex(phrase).search(sentence)
        if m:
            return m.group(0)
    for pattern in concept.patterns:
        m = _compile(pattern).search(sentence)
        if m:
            return m.group(0)
    return None


def is_negated(sentence: str, start: int) -> bool:
    """A negation word among the 5 words before `start` in the same sentence."""
    before = [w.rstrip(".'-/%+").lower() for w in words(sentence[:start])][-5:]
    return any(w in NEGATIONS or w.endswith("n't") for w in before)


def _contradiction(concept: Concept, sentence: str) -> str | None:
    for pattern in concept.contradictions:
        for m in _compile(pattern).finditer(sentence):
            if not is_negated(sentence, m.start()):
                return m.group(0)
    return None


def analyse_text(q: TextQuestion, text: str) -> TextAnalysis:
    """Apply the rubric rules to an answer; score_text turns this into points and feedback."""
    raw_sentences = split_sentences(text)
    total_words = sum(len(words(s)) for s in raw_sentences)
    sentences: list[Sentence] = []
    for s in raw_sentences:
        found = tuple(c.id for c in q.concepts if _positive(c, s))
        n_words = len(words(s))
        verb = has_verb(s)
        listed = is_list(s)
        well_formed = (
            verb
            and n_words >= q.words_per_concept * len(found)
            and total_words >= q.min_words
            and not (listed and len(found) > q.max_concepts_in_list)
        )
        sentences.append(Sentence(s, n_words, verb, found, well_formed, listed))
    credit = to_fraction(q.fragment_credit)
    results = []
    for c in q.concepts:
        contradiction = next((m for s in sentences if (m := _contradiction(c, s.text))), None)
        if contradiction:
            results.append(ConceptResult(c.id, "contradicted", Fraction(0), contradiction))
            continue
        hits = [s for s in sentences if c.id in s.concepts]
        if not hits:
            results.append(ConceptResult(c.id, "missing", Fraction(0)))
        elif any(s.well_formed for s in hits):
            evidence = next(s.text for s in hits if s.well_formed)
            results.append(ConceptResult(c.id, "stated", Fraction(c.points), evidence))
        else:
            results.append(ConceptResult(c.id, "fragment", c.points * credit, hits[0].text))
    return TextAnalysis(total_words, tuple(sentences), tuple(results))


def score_text(q: TextQuestion, text: str) -> QuestionResult:
    """Score a free-text answer by its rubric (docs/quiz.md, "Free text")."""
    analysis = analyse_text(q, text)
    earned = sum((r.points for r in analysis.concepts), Fraction(0))
    points = min(Fraction(q.points), earned)
    correct = points == q.points
    by_id = {c.id: c for c in q.concepts}
    lines = []
    for r in analysis.concepts:
        c = by_id[r.id]
        desc = _one_line(c.description)
        if r.status == "stated":
            lines.append(f"- ✓ {desc} (+{fmt(r.points)})")
        elif r.status == "fragment":
            lines.append(
                f"- ½ {desc} (+{fmt(r.points)} of {c.points}): it appears only in a keyword list or a "
                "fragment; say it in a sentence with a verb"
            )
        elif r.status == "contradicted":
            why = f" {c.contradiction_feedback.strip()}" if c.contradiction_feedback else ""
            lines.append(f"- ✗ {desc}: cancelled, your answer says “{r.evidence}”.{why}")
        else:
            lines.append(f"- ✗ missing: {desc}")
    if analysis.words < q.min_words:
        lines.append(f"\nYour answer has {analysis.words} word(s); write at least {q.min_words} in full sentences.")
    head = "Full marks." if correct else f"{fmt(points)} of {q.points} point(s)."
    feedback = head + "\n\n" + "\n".join(lines)
    if not correct:
        feedback += f"\n\nA full-marks answer: {q.model_answer.strip()}"
    details = tuple(
        {"concept": r.id, "status": r.status, "points": as_number(r.points), "max_points": by_id[r.id].points}
        for r in analysis.concepts
    )
    return QuestionResult(q.id, q.type, points, q.points, correct, feedback, details=details)


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
    if isinstance(question, SingleChoice | MultipleChoice):
        ids = [c.id for c in question.choices]
        if quiz.shuffle_choices and question.shuffle:
            _rng(quiz, seed, question.id).shuffle(ids)
        return tuple(ids)
    if isinstance(question, OrderingQuestion):
        truth = [i.id for i in question.items]
        ids = list(truth)
        _rng(quiz, seed, question.id).shuffle(ids)
        if ids == truth:  # never show the answer: rotate by one
            ids = ids[1:] + ids[:1]
        return tuple(ids)
    return ()


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
    q = pq.question
    if isinstance(q, NumericQuestion | TextQuestion):
        return normalize_answer(q, text)
    labels = {label.lower(): opt for label, opt in zip(pq.labels, pq.options, strict=True)}
    tokens = [t for t in re.split(r"[\s,]+", text.lower()) if t]
    if len(tokens) == 1 and len(tokens[0]) > 1 and all(ch in labels for ch in tokens[0]):
        tokens = list(tokens[0])  # "ac" or "cab"
    for t in tokens:
        if t not in labels:
            shown = ", ".join(pq.labels)
            raise AnswerFormatError(f"{t.upper()!r} is not one of the letters shown ({shown})")
    picked = [labels[t] for t in tokens]
    if isinstance(q, OrderingQuestion | MultipleChoice) and len(set(tokens)) != len(tokens):
        raise AnswerFormatError("give each letter once")
    if isinstance(q, OrderingQuestion) and len(tokens) != len(labels):
        raise AnswerFormatError(f"give all {len(labels)} letters in order, e.g. {' '.join(reversed(pq.labels))}")
    if isinstance(q, SingleChoice):
        if len(picked) != 1:
            raise AnswerFormatError("pick exactly one letter")
        return normalize_answer(q, picked[0])
    return normalize_answer(q, picked)
