"""Answers files: reading one (every problem with file:line:col) and writing a template.

An answers file is YAML:

    schema_version: 1          # optional; 1 if absent
    quiz: "5.3"                # optional; when present it must name the quiz being scored
    answers:
      alert-3am: b             # single choice: one choice id
      free-columns: [a, c]     # multiple choice: a list of choice ids ("a, c" works too)
      eviction-default: 100Mi  # numeric: a number, or a size for byte questions
      cgroup-files: {limit-v1: memory.limit_in_bytes, limit-v2: memory.max}   # blanks, by id
      qos-kill-order: [besteffort, burstable-10, guaranteed]   # ordering: every item id once
      java-pod-explain: |      # explain: a few sentences, graded by people
        The limit counts ...

A question left out, or left empty, is unanswered and scores 0; that is not an error.
Anything the engine could not read (an unknown question or choice id, a list where one
id is expected, "lots" for a number) is an error naming the file, line and question.

Every answer is read as the text written in the file (the YAML node's source text), so
YAML 1.1's guesses never decide a score: `-16:40` stays "-16:40" (not -1000), `0755` stays
"0755" (not 493), `yes` stays "yes" (not true), `5.10` stays "5.10". A file too large or
nested too deeply is refused before it is parsed.
"""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Any

from labcoat.content.loader import SCHEMA_VERSION, read_yaml
from labcoat.content.quiz import (
    Quiz,
)
from labcoat.errors import USAGE, ContentError, ContentErrors
from labcoat.quiz.engine import Answer, AnswerFormatError, normalize_answer, present
from labcoat.quiz.types import TYPE_NAMES, comment_lines, question_type
from labcoat.quiz.values import MAX_DIGITS

TOP_KEYS = ("schema_version", "quiz", "answers")
MAX_FILE_BYTES = 256 * 1024  # a full answers file with every explanation is a few KiB
MAX_NESTING = 32  # an answers file nests 3 levels (answers > question > blank/list)
_BRACKETS = re.compile(r"[\[\]{}]")
_DIGITS = re.compile(r"\d{101,}")  # the YAML reader would convert it first (Python refuses 4300+)


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
    _prescan(path, shown)
    try:
        doc = read_yaml(path, shown)
    except ContentError as exc:
        raise AnswersError(exc.message, path=exc.path, line=exc.line, col=exc.col, hint=exc.hint) from None
    except (ValueError, OverflowError, RecursionError, MemoryError):
        # e.g. an int of 5000 digits (Python refuses to convert more than 4300) or deep nesting
        raise AnswersError(
            "a value in this file cannot be read (a number with thousands of digits, or nesting too deep)",
            path=shown, hint="write every answer as a short value or a few sentences of text",
        ) from None
    doc.data = _as_text(doc, (), doc.data)
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
    version: Any = data.get("schema_version", str(SCHEMA_VERSION))
    version = int(version) if isinstance(version, str) and version.isdigit() and len(version) < 5 else None
    if version is None or version < 1:
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
            err(("quiz",), f"quiz must be a quiz id, found {_kind_of(named)}", hint=f'write quiz: "{quiz.id}"')
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


def _prescan(path: Path, shown: str) -> None:
    """Refuse, before parsing, a file that is too large or nests too deeply (both take the parser long)."""
    from labcoat.content.files import FileProblem, read_bytes_bounded

    try:  # a FIFO, a device or a growing file is never read here: read_yaml then reports it in words
        raw = read_bytes_bounded(path, MAX_FILE_BYTES)
    except FileProblem as exc:
        if "too large" in exc.message:
            raise AnswersError(f"the file {exc.message}; an answers file has at most {MAX_FILE_BYTES} bytes",
                               path=shown, hint="write each answer as a short value or a few sentences") from None
        return
    depth = 0  # unclosed [ and { so far (a bracket inside text only makes this stricter)
    for n, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), 1):
        body = line.lstrip(" -")
        too_deep = len(line) - len(body) > 8 * MAX_NESTING  # block nesting: indentation, or "- - - ..."
        for bracket in _BRACKETS.finditer(body):
            depth = depth + 1 if bracket.group() in "[{" else max(0, depth - 1)
            if depth > MAX_NESTING:
                too_deep = True
                break
        digits = _DIGITS.search(line)
        if digits:
            raise AnswersError(
                f"a number with {len(digits.group())} digits; no answer needs more than {MAX_DIGITS}",
                path=shown, line=n, col=digits.start() + 1, hint="write the value as you would read it, e.g. 100Mi or -997",
            )
        if too_deep:
            raise AnswersError(
                f"nested more than {MAX_NESTING} levels deep; an answers file needs 3", path=shown, line=n,
                hint="answers are ids, lists of ids or short text: answers: {question-id: value}",
            )


def _as_text(doc: Any, loc: tuple[Any, ...], value: Any) -> Any:
    """The data with every scalar as the text written in the file (None stays None)."""
    if isinstance(value, dict):
        return {k: _as_text(doc, (*loc, k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_as_text(doc, (*loc, i), v) for i, v in enumerate(value)]
    if value is None or isinstance(value, str):
        return value
    raw = doc.raw.get(loc)
    return raw if isinstance(raw, str) else str(value)


def _kind_of(value: Any) -> str:
    return "a mapping" if isinstance(value, dict) else "a list" if isinstance(value, list) else repr(value)


def _format_hint(q: Any) -> str:
    return question_type(q).format_hint(q)


# ----------------------------------------------------------------------------- template


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
        f"# Explain questions ({quiz.manual_points} points) are never scored by labcoat: you see a model",
        "# answer to compare with, and an instructor grades them by hand.",
        f"schema_version: {SCHEMA_VERSION}",
        f"quiz: {json.dumps(quiz.id)}",
        "answers:",
    ]
    for pq in present(quiz, seed).questions:
        q = pq.question
        out.append("")
        out.append(f"  # ---- Q{pq.number}: {TYPE_NAMES[q.type]}, {q.points} point{'s' if q.points != 1 else ''}")
        out += comment_lines(q.prompt)
        out += question_type(q).template(pq)
        out.append(f"  {q.id}:")
    return "\n".join(out) + "\n"
