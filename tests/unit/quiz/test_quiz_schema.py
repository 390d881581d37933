"""The quiz schema refuses quizzes that could not be scored as documented, with file:line and the id."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from labcoat.content.catalog import Catalog
from labcoat.content.loader import load_model
from labcoat.content.quiz import Quiz
from labcoat.errors import ContentError

HEAD = 'schema_version: 1\nid: "q"\ntitle: T\npass_mark: 0.7\nquestions:\n'
SINGLE = """\
  - id: s
    type: single
    prompt: P
    explanation: E
    choices:
      - {id: a, text: A, correct: true}
      - {id: b, text: B}
"""


def load(tmp_path: Path, body: str, head: str = HEAD) -> Quiz:
    path = tmp_path / "q.yaml"
    path.write_text(head + textwrap.dedent(body) if not body.startswith("  ") else head + body)
    return load_model(Quiz, path, "quizzes/q.yaml")


def error(tmp_path: Path, body: str, head: str = HEAD) -> ContentError:
    with pytest.raises(ContentError) as info:
        load(tmp_path, body, head)
    return info.value


def test_a_minimal_quiz_loads(tmp_path: Path) -> None:
    quiz = load(tmp_path, SINGLE)
    assert quiz.id == "q" and quiz.max_points == 1 and quiz.questions[0].type == "single"


def test_quiz_id_must_be_quoted(tmp_path: Path) -> None:
    err = error(tmp_path, SINGLE, HEAD.replace('"q"', "5.3"))
    assert (err.line, err.message) == (2, "id: must be text, found the number 5.3")
    assert "quote" in (err.hint or "")


@pytest.mark.parametrize(
    ("edit", "line", "message"),
    [
        (("{id: b, text: B}", "{id: b, text: B, correct: true}"), 6, "exactly one correct choice; found 2 (a, b)"),
        (("{id: a, text: A, correct: true}", "{id: a, text: A}"), 6, "exactly one correct choice; found 0"),
        (("{id: b, text: B}", "{id: a, text: B}"), 6, "choice id 'a' is used twice"),
        (("type: single", "type: essay"), 6, "'type' must be one of: single, multiple, numeric, blanks, ordering, explain"),
        (("    explanation: E\n", ""), 6, "explanation: Field required"),
        (("{id: b, text: B}", "{id: b, text: B, points: 2}"), 12, "unknown key 'points'"),
        (("id: s", "id: S1"), 6, "id: 'S1' is not allowed here; write lower-case letters"),
    ],
)
def test_single_choice_rules(tmp_path: Path, edit: tuple[str, str], line: int, message: str) -> None:
    err = error(tmp_path, SINGLE.replace(*edit))
    assert err.path == "quizzes/q.yaml"
    assert err.line == line, str(err)
    assert message in err.message, str(err)


def test_question_ids_unique(tmp_path: Path) -> None:
    err = error(tmp_path, SINGLE + SINGLE)
    assert "question id 's' is used twice" in err.message


def test_multiple_needs_a_right_and_a_wrong_choice(tmp_path: Path) -> None:
    body = """\
  - id: m
    type: multiple
    prompt: P
    explanation: E
    choices:
      - {id: a, text: A, correct: true}
      - {id: b, text: B, correct: true}
      - {id: c, text: C, correct: true}
"""
    assert "at least one correct and one wrong choice; 3 of 3 are correct" in error(tmp_path, body).message


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ("kind: bytes\n    answer: lots", "answer: not a size: 'lots'"),
        ("answer: ten", "answer: not a number: 'ten'"),
        ("kind: bytes\n    answer: 10Gi\n    tolerance: 1.5", "tolerance: write a size as text"),
        ("kind: bytes\n    answer: 10Gi\n    unit: GB", "'unit' is only for kind number"),
        ("answer: 3\n    mistakes: [{value: many, feedback: F}]", "mistakes[0].value: not a number"),
        ("answer: true", "answer"),
    ],
)
def test_numeric_rules(tmp_path: Path, fields: str, message: str) -> None:
    body = f"  - id: n\n    type: numeric\n    prompt: P\n    explanation: E\n    {fields}\n"
    assert message in str(error(tmp_path, body))


def test_ordering_items_unique_and_at_least_three(tmp_path: Path) -> None:
    body = """\
  - id: o
    type: ordering
    prompt: P
    explanation: E
    items: [{id: a, text: A}, {id: b, text: B}, {id: a, text: C}]
"""
    assert "item id 'a' is used twice" in error(tmp_path, body).message
    two = body.replace(", {id: a, text: C}", "")
    assert "at least 3 items" in error(tmp_path, two).message


EXPLAIN = """\
  - id: t
    type: explain
    prompt: P
    explanation: E
    model_answer: M
    rubric:
      - {id: r1, criterion: the cache is reclaimable}
      - {id: r2, points: 2, criterion: available is what matters}
"""
BLANKS = """\
  - id: b
    type: blanks
    prompt: P
    explanation: E
    blanks:
      - {id: v2, label: the v2 limit file, accept: [memory.max]}
      - {id: size, label: 100Mi in bytes, kind: bytes, units: kubernetes, answer: 100Mi, points: 2}
"""


def test_explain_question_loads_with_manual_points(tmp_path: Path) -> None:
    quiz = load(tmp_path, EXPLAIN + SINGLE)
    q = quiz.questions[0]
    assert q.points == 3 and [r.id for r in q.rubric] == ["r1", "r2"]
    assert (quiz.max_points, quiz.manual_points) == (1, 3)  # explanations are not in the automatic total


def test_blanks_question_loads_and_adds_up(tmp_path: Path) -> None:
    q = load(tmp_path, BLANKS).questions[0]
    assert q.points == 3 and [b.kind for b in q.blanks] == ["token", "bytes"]


@pytest.mark.parametrize(
    ("body", "edit", "message"),
    [
        (EXPLAIN, ("    model_answer: M\n", ""), "model_answer: Field required"),
        (EXPLAIN, ("id: r2", "id: r1"), "rubric item id 'r1' is used twice"),
        (EXPLAIN, ("    model_answer: M", "    points: 5\n    model_answer: M"), "points is 5 but the rubric adds up to 3"),
        (BLANKS, ("id: size", "id: v2"), "blank id 'v2' is used twice"),
        (BLANKS, ("accept: [memory.max]", "accept: []"), "a token blank needs `accept`"),
        (BLANKS, ("answer: 100Mi", "answer: 100MB"), "not a Kubernetes quantity"),
        (BLANKS, ("units: kubernetes", "units: furlongs"), "units"),
        (BLANKS, ("kind: bytes, units: kubernetes, answer: 100Mi", "kind: bytes, units: kubernetes"), "needs `answer`"),
        (EXPLAIN.replace("type: explain", "type: text"), ("", ""), "the keyword-scored `text` type is gone"),
    ],
)
def test_explain_and_blanks_rules(tmp_path: Path, body: str, edit: tuple[str, str], message: str) -> None:
    assert message in str(error(tmp_path, body.replace(*edit) if edit[0] else body))


def test_follows_must_name_an_earlier_question(tmp_path: Path) -> None:
    follow = SINGLE.replace("id: s", "id: f").replace("    type: single", "    type: single\n    follows: s")
    assert load(tmp_path, SINGLE + follow).questions[1].follows == "s"
    err = error(tmp_path, follow + SINGLE)
    assert "question 'f': follows 's', which is not a question earlier in this file" in err.message


def test_pass_mark_is_a_fraction(tmp_path: Path) -> None:
    err = error(tmp_path, SINGLE, HEAD.replace("0.7", "70"))
    assert err.line == 4 and "pass_mark" in err.message


def test_catalog_loads_the_quiz(quiz_content: Path) -> None:
    catalog = Catalog.load(quiz_content)
    assert sorted(catalog.quizzes) == ["5.3", "mini"]
    assert catalog.quiz("5.3").title.startswith("Linux Performance, Module 5.3")


def test_json_schema_exports(tmp_path: Path) -> None:
    schema = Quiz.model_json_schema()
    assert "questions" in schema["required"]
    kinds = {d["properties"]["type"]["const"] for d in schema["$defs"].values() if "type" in d.get("properties", {})}
    assert kinds == {"single", "multiple", "numeric", "blanks", "ordering", "explain"}
