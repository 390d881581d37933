"""The question-type registry: every type's model has one behaviour, and the engine only asks the registry."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest

from labcoat.content.quiz import QUESTION_MODELS, NumericQuestion, type_name
from labcoat.quiz import types
from labcoat.quiz.engine import QuestionResult, score_answer


def test_every_question_model_has_exactly_one_registered_type() -> None:
    assert sorted(types.QUESTION_TYPES) == sorted(type_name(m) for m in QUESTION_MODELS)
    for name, qtype in types.QUESTION_TYPES.items():
        assert qtype.name == name and type_name(qtype.model) == name


def test_type_names_shown_to_people_are_unchanged() -> None:
    assert dict(types.TYPE_NAMES) == {
        "single": "single choice",
        "multiple": "multiple choice",
        "numeric": "number",
        "blanks": "fill in the blanks",
        "ordering": "ordering",
        "explain": "explain (graded by people)",
    }


def test_only_explain_is_graded_by_people() -> None:
    assert [type_name(m) for m in QUESTION_MODELS if m.manual] == ["explain"]


def test_a_type_registered_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="'numeric' is registered twice"):
        types.register(type("Again", (types.QuestionType,), {"title": "again", "model": NumericQuestion}))


def test_the_engine_scores_through_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replacing a type's behaviour in the registry is all it takes: nothing else branches on the type."""
    calls: list[Any] = []

    class Halved(types.Numeric):
        def score(self, q: Any, text: str) -> QuestionResult:
            calls.append(text)
            return QuestionResult(q.id, q.type, Fraction(q.points, 2), q.points, False, "half")

    monkeypatch.setitem(types.QUESTION_TYPES, "numeric", Halved())
    q = NumericQuestion.model_validate({"id": "n", "type": "numeric", "prompt": "How many?", "explanation": "x",
                                        "answer": 4, "points": 2})
    result = score_answer(q, "4")
    assert (result.points, result.feedback, calls) == (Fraction(1), "half", ["4"])
