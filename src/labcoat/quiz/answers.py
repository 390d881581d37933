"""Answers files: reading one (every problem with file:line:col) and writing a template.

An answers file is YAML:

    schema_version: 1          # optional; 1 if absent
    quiz: "5.3"                # optional; when present it must name the quiz being scored
    answers:
      alert-3am: b             # single choice: one choice id
      free-columns: [a, c]     # multiple choice: a list of choice ids ("a, c" works too)
      eviction-default: 100Mi  # numeric: a number, or a size for byte questions
      qos-kill-order: [besteffort, burstable-10, guaranteed]   # ordering: every item id once
      java-pod-explain: |      # text: a few sentences
        The limit counts ...

A question left out, or left empty, is unanswered and scores 0; that is not an error.
Anything the engine could not read (an unknown question or choice id, a list where one
id is expected, "lots" for a number) is an error naming the file, line and question.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

from labcoat.content.loader import SCHEMA_VERSION, read_yaml
from labcoat.content.quiz import (
    MultipleChoice,
    NumericQuestion,
    OrderingQuestion,
    Quiz,
    SingleChoice,
    TextQuestion,
)
from labcoat.errors import USAGE, ContentError, ContentErrors
from labcoat.quiz.engine import TYPE_NAMES, Answer, AnswerFormatError, normalize_answer, present

TOP_KEYS = ("schema_version", "quiz", "answers")


class AnswersError(ContentError):
    """A problem in an answers file given on the command line: a usage error (exit 2), with file:line:col."""

    exit_code = USAGE


class AnswersErrors(ContentErrors):
    """Several problems in one answers file, reported together (exit 2)."""

    exit_code = USAGE


def load_answers(path: Path, quiz: Quiz, display: str | None = None) -> dict[str, Answer]:
    """Read and check an answers file for `quiz`; return question id -> answer in normal form.

    Raises AnswersError (one problem) or AnswersErrors (several), never a traceback.
    """
    shown = display or str(path)
    try:
        doc = read_yaml(path, shown)
    except ContentError as exc:
        raise AnswersError(exc.message, path=exc.path, line=exc.line, col=exc.col, hint=exc.hint) from None
    errors: list[AnswersError] = []

    def err(loc: tuple[Any, ...], message: str, hint: str | None = None) -> None:
        line, col = doc.where(loc)
        errors.append(AnswersError(message, path=shown, line=line, col=col, hint=hint))

    data = doc.data
    if not isinstance(data, dict):
        raise AnswersError(
            "the top level must be a mapping with an 'answers:' key",
            path=shown,
            line=1,
            col=1,
            hint=f"write `lab quiz {quiz.id} --template -o FILE` for a file to fill in",
        )
    for key in data:
        if key not in TOP_KEYS:
            err((key,), f"unknown key {key!r}", hint=f"the keys are: {', '.join(TOP_KEYS)}")
    version = data.get("schema_version", SCHEMA_VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        err(("schema_version",), "schema_version must be a whole number (1)")
    elif version > SCHEMA_VERSION:
        err(
            ("schema_version",),
            f"written for schema_version {version}; this labcoat reads up to {SCHEMA_VERSION}",
            hint="upgrade labcoat (pip install -U labcoat)",
        )
    if "quiz" in data:
        named = data["quiz"]
        if not isinstance(named, str):
            err(("quiz",), f"quiz must be text, found {named!r}", hint=f'quote it: quiz: "{quiz.id}"')
        elif named != quiz.id:
            err(("quiz",), f"these answers are for quiz {named!r}, not {quiz.id!r}",
                hint=f"run `lab quiz {named} --answers {shown}`, or correct the quiz: line")
    answers = data.get("answers", ...)
    if answers is ...:
        err((), "missing 'answers'", hint="add an 'answers:' mapping of question id to answer")
        answers = {}
    elif answers is None:
        answers = {}
    elif not isinstance(answers, dict):
        err(("answers",), "'answers' must be a mapping of question id to answer")
        answers = {}

    ids = [q.id for q in quiz.questions]
    out: dict[str, Answer] = {}
    for key, raw in answers.items():
        loc = ("answers", key)
        if not isinstance(key, str):
            err(loc, f"answers: {key!r} is not a question id; ids are text such as {ids[0]}")
            continue
        if key not in ids:
            close = difflib.get_close_matches(key, ids, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"the question ids are: {', '.join(ids)}"
            err(loc, f"answers.{key}: quiz {quiz.id} has no question {key!r}", hint=hint)
            continue
        question = quiz.question(key)
        try:
            out[key] = normalize_answer(question, raw)
        except AnswerFormatError as exc:
            err(loc, f"answers.{key} ({TYPE_NAMES[question.type]}): {exc}", hint=_format_hint(question))
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise AnswersErrors(list(errors))
    return out


def _format_hint(q: Any) -> str:
    if isinstance(q, SingleChoice):
        return f"write one of: {', '.join(c.id for c in q.choices)}"
    if isinstance(q, MultipleChoice):
        return f"write a list of choice ids, e.g. [{', '.join(c.id for c in q.choices[:2])}]"
    if isinstance(q, OrderingQuestion):
        return f"write every item id once, in order: [{', '.join(sorted(i.id for i in q.items))}] rearranged"
    if isinstance(q, NumericQuestion):
        if q.kind == "bytes":
            return "write a size such as 10Gi, 10240M or 10737418240"
        return f"write a number such as 42 or -0.5{f' (optionally followed by {q.unit})' if q.unit else ''}"
    return "write a few sentences; use a block (key: |) for several lines"


# ----------------------------------------------------------------------------- template


def _comment(text: str, indent: str = "  # ") -> list[str]:
    return [(indent + line).rstrip() for line in text.strip().splitlines()]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def template(quiz: Quiz, seed: int) -> str:
    """An answers file to fill in: every question as a comment above an empty answer.

    Questions and options are listed as `--seed seed` shows them; answers use ids, so a
    filled-in file scores the same whatever the order.
    """
    pct = f"{quiz.pass_mark * 100:g}%"
    out = [
        f"# Answers for quiz {quiz.id}: {_one_line(quiz.title)}",
        "# Fill in the answers, then score them:",
        f"#   lab quiz {quiz.id} --answers THIS_FILE     (add --json for machine-readable output)",
        "# An answer left empty scores 0. Answers name choices and items by id, so the order",
        f"# below (the order of --seed {seed}) does not matter.",
        f"# Pass mark: {pct} of {quiz.max_points} points. How each type is scored: docs/quiz.md.",
        f"schema_version: {SCHEMA_VERSION}",
        f"quiz: {json.dumps(quiz.id)}",
        "answers:",
    ]
    for pq in present(quiz, seed).questions:
        q = pq.question
        out.append("")
        out.append(f"  # ---- Q{pq.number}: {TYPE_NAMES[q.type]}, {q.points} point{'s' if q.points != 1 else ''}")
        out += _comment(q.prompt)
        if isinstance(q, SingleChoice | MultipleChoice):
            by_id = {c.id: c for c in q.choices}
            out.append("  #")
            out += [f"  #   {cid}) {_one_line(by_id[cid].text)}" for cid in pq.options]
            if isinstance(q, SingleChoice):
                out.append("  # Answer: one choice id.")
            else:
                out.append("  # Answer: a list of every choice id that applies, e.g. [x, y]. Wrong ticks cost points.")
        elif isinstance(q, OrderingQuestion):
            by_id = {i.id: i for i in q.items}
            out.append("  #")
            out += [f"  #   {iid}: {_one_line(by_id[iid].text)}" for iid in pq.options]
            out.append(f"  # Answer: a list of all {len(q.items)} item ids, {q.first} first.")
        elif isinstance(q, NumericQuestion):
            if q.kind == "bytes":
                out.append("  # Answer: a size, e.g. 10Gi, 10240M or 10737418240 (binary units).")
            else:
                unit = f" ({q.unit} optional)" if q.unit else ""
                out.append(f"  # Answer: a number{unit}.")
        elif isinstance(q, TextQuestion):
            out.append("  # Answer: a few full sentences (a bare keyword list earns at most part of the points):")
            out.append(f"  #   {q.id}: |")
            out.append("  #     Your first sentence. Your second sentence.")
        out.append(f"  {q.id}:")
    return "\n".join(out) + "\n"
