"""The pure scoring rules (docs/quiz.md "Scoring"), with hand-computed exact values."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction as F

import pytest

from labcoat.content.quiz import Quiz
from labcoat.quiz.engine import (
    AnswerFormatError,
    QuizResult,
    as_number,
    kendall_tau,
    normalize_answer,
    parse_numeric,
    parse_typed,
    present,
    score_answer,
    score_quiz,
)

# ----------------------------------------------------------------------------- single choice


def test_single_choice_all_or_nothing(mini: Quiz) -> None:
    q = mini.question("s1")
    right = score_answer(q, "a")
    assert (right.points, right.max_points, right.correct) == (F(2), 2, True)
    wrong = score_answer(q, "b")
    assert (wrong.points, wrong.correct) == (F(0), False)
    assert "Unused memory only." in wrong.feedback  # the picked choice's feedback
    assert "**a**" in wrong.feedback  # and the right answer


def test_unanswered_scores_zero(mini: Quiz) -> None:
    for q in mini.questions:
        for blank in (None, "", "   "):
            result = score_answer(q, blank)
            assert result.points == 0 and not result.answered and not result.correct
            assert result.feedback == "Not answered."


# ----------------------------------------------------------------------------- multiple choice


@pytest.mark.parametrize(
    ("ticks", "expected"),
    [
        (["a", "c"], F(3)),  # C=2, W=3: 2/2 - 0
        (["a"], F(3, 2)),  # 1/2
        (["a", "c", "b"], F(2)),  # 1 - 1/3 = 2/3 of 3
        (["a", "b"], F(1, 2)),  # 1/2 - 1/3 = 1/6 of 3
        (["a", "b", "d"], F(0)),  # 1/2 - 2/3 < 0: floor
        (["a", "b", "c", "d", "e"], F(0)),  # ticking everything: 1 - 1
        ([], F(0)),  # ticking nothing
        (["b", "d", "e"], F(0)),
    ],
)
def test_multiple_choice_partial_credit(mini: Quiz, ticks: list[str], expected: F) -> None:
    result = score_answer(mini.question("m1"), ticks)
    assert result.points == expected
    assert result.correct == (expected == 3)


def test_multiple_choice_accepts_a_string_of_ids_in_any_order(mini: Quiz) -> None:
    q = mini.question("m1")
    assert normalize_answer(q, "c, a") == ("a", "c")
    assert normalize_answer(q, "c a") == ("a", "c")
    assert score_answer(q, "c,a").points == 3


def test_multiple_choice_feedback_names_wrong_and_missed(mini: Quiz) -> None:
    fb = score_answer(mini.question("m1"), ["a", "b"]).feedback
    assert "1/2 − 1/3" in fb
    assert "tmpfs has no backing file." in fb  # the wrong pick's feedback
    assert "missed **c**" in fb


def test_multiple_choice_with_the_53_shape() -> None:
    """docs/quiz.md's table: 2 points, C = 3, W = 3."""
    quiz = Quiz.model_validate(
        {
            "schema_version": 1,
            "id": "t",
            "title": "t",
            "pass_mark": 0.5,
            "questions": [
                {
                    "id": "m",
                    "type": "multiple",
                    "points": 2,
                    "prompt": "p",
                    "explanation": "e",
                    "choices": [{"id": c, "text": c, "correct": c in "abc"} for c in "abcdef"],
                }
            ],
        }
    )
    q = quiz.questions[0]
    table = {
        ("a", "b", "c"): F(2),
        ("a", "b"): F(4, 3),
        ("a", "b", "c", "d"): F(4, 3),
        ("a", "b", "d"): F(2, 3),
        ("a", "d", "e"): F(0),
        tuple("abcdef"): F(0),
    }
    for ticks, expected in table.items():
        assert score_answer(q, list(ticks)).points == expected, ticks


# ----------------------------------------------------------------------------- numeric


@pytest.mark.parametrize(
    "answer",
    ["10Gi", "10G", "10GiB", "10gb", "10 GiB", "10240M", "10240Mi", "10485760k", "10737418240", 10737418240, "10_737_418_240"],
)
def test_bytes_answers_in_any_notation(mini: Quiz, answer: object) -> None:
    result = score_answer(mini.question("n1"), answer)
    assert result.points == 1 and result.correct


@pytest.mark.parametrize("answer", ["1Gi", "10737418239", "10Mi", "10000000000"])
def test_bytes_answers_that_are_wrong(mini: Quiz, answer: str) -> None:
    result = score_answer(mini.question("n1"), answer)
    assert result.points == 0
    assert "10737418240 bytes (10.0 GiB)" in result.feedback


@pytest.mark.parametrize(
    ("answer", "points"),
    [
        ("30", 2), ("30%", 2), ("30 %", 2), (30, 2), (30.0, 2), ("29", 2), ("31", 2), ("31.0", 2),
        ("28.99", 0), ("31.01", 0), ("3e1", 2), ("+30", 2), (31.5, 0),
    ],
)
def test_number_with_unit_and_tolerance(mini: Quiz, answer: object, points: int) -> None:
    assert score_answer(mini.question("n2"), answer).points == points


def test_number_tolerance_is_exact_not_float(mini: Quiz) -> None:
    # 31 - 30 == 1 exactly; with floats 30.1 + 0.9 style errors would creep in.
    assert parse_numeric(mini.question("n2"), "30.1") == F(301, 10)


def test_relative_tolerance(mini: Quiz) -> None:
    q = mini.question("n3")  # 1000 +- 5%
    assert [score_answer(q, v).points for v in ("950", "1050", "949.9", "1050.1")] == [1, 1, 0, 0]


def test_numeric_mistake_feedback(mini: Quiz) -> None:
    fb = score_answer(mini.question("n2"), "0").feedback
    assert "too low" in fb and "That is `full`." in fb


def test_negative_numbers_and_unicode_minus(quiz53: Quiz) -> None:
    q = quiz53.question("qos-adj-guaranteed")
    assert score_answer(q, -997).correct
    assert score_answer(q, "−997").correct  # U+2212
    fb = score_answer(q, -998).feedback
    assert "older Kubernetes releases" in fb


@pytest.mark.parametrize("bad", ["lots", "30 s", "30%%", "1,000", "", "0x10"])
def test_unreadable_numbers(mini: Quiz, bad: str) -> None:
    q = mini.question("n2")
    if not bad:
        assert normalize_answer(q, bad) is None
        return
    with pytest.raises(AnswerFormatError, match="not a number"):
        normalize_answer(q, bad)


def test_unit_only_where_the_question_has_one(mini: Quiz) -> None:
    with pytest.raises(AnswerFormatError):
        normalize_answer(mini.question("n3"), "1000%")


@pytest.mark.parametrize("bad", ["ten gigs", "-1Gi", "10 GB of RAM"])
def test_unreadable_sizes(mini: Quiz, bad: str) -> None:
    with pytest.raises(AnswerFormatError, match="not a size"):
        normalize_answer(mini.question("n1"), bad)


@pytest.mark.parametrize("bad", [True, [1], {"a": 1}])
def test_numeric_wrong_shapes(mini: Quiz, bad: object) -> None:
    with pytest.raises(AnswerFormatError, match="expected a"):
        normalize_answer(mini.question("n2"), bad)


# ----------------------------------------------------------------------------- ordering


@pytest.mark.parametrize(
    ("order", "concordant", "tau", "points"),
    [
        ("wxyz", 6, F(1), F(3)),
        ("xwyz", 5, F(2, 3), F(2)),  # one neighbouring swap
        ("xwzy", 4, F(1, 3), F(1)),  # two
        ("xyzw", 3, F(0), F(0)),  # first moved to the end: 3 of 6
        ("zyxw", 0, F(-1), F(0)),  # reversed: floor at 0
    ],
)
def test_ordering_kendall_tau(mini: Quiz, order: str, concordant: int, tau: F, points: F) -> None:
    q = mini.question("o1")
    assert kendall_tau(list(order), list("wxyz")) == (concordant, 6, tau)
    result = score_answer(q, list(order))
    assert result.points == points
    assert result.correct == (order == "wxyz")


def test_ordering_docs_examples_with_five_items(quiz53: Quiz) -> None:
    q = quiz53.question("qos-kill-order")  # 3 points, 5 items, P = 10
    right = ["batch", "api", "cache", "db", "kubelet"]
    cases = {
        tuple(right): F(3),
        ("api", "batch", "cache", "db", "kubelet"): F(12, 5),
        ("api", "cache", "db", "kubelet", "batch"): F(3, 5),
        ("api", "batch", "db", "cache", "kubelet"): F(9, 5),
        tuple(reversed(right)): F(0),
    }
    for order, points in cases.items():
        assert score_answer(q, list(order)).points == points, order


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (["w", "x", "y"], "missing"),
        (["w", "x", "y", "y", "z"], "appears twice"),
        (["w", "x", "y", "q"], "unknown item 'q'"),
        ("w", "missing"),
        (42, "expected a list"),
    ],
)
def test_ordering_must_be_a_permutation(mini: Quiz, bad: object, message: str) -> None:
    with pytest.raises(AnswerFormatError, match=message):
        normalize_answer(mini.question("o1"), bad)


# ----------------------------------------------------------------------------- choice answers


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("e", "unknown choice 'e'; the choices are: a, b, c"),
        (["a"], "pick one choice, not a list"),
        (1, "expected one choice id"),
        (True, "expected one choice id"),
    ],
)
def test_single_choice_format_errors(mini: Quiz, bad: object, message: str) -> None:
    with pytest.raises(AnswerFormatError, match=message):
        normalize_answer(mini.question("s1"), bad)


def test_multiple_choice_format_errors(mini: Quiz) -> None:
    q = mini.question("m1")
    with pytest.raises(AnswerFormatError, match="ticked twice"):
        normalize_answer(q, ["a", "a"])
    with pytest.raises(AnswerFormatError, match="unknown choice 'z'"):
        normalize_answer(q, ["a", "z"])
    with pytest.raises(AnswerFormatError, match="is not an id"):
        normalize_answer(q, ["a", 1])


# ----------------------------------------------------------------------------- whole quiz


def test_score_quiz_sums_exactly_and_keeps_file_order(mini: Quiz) -> None:
    result = score_quiz(mini, {"m1": ["a", "b"], "o1": list("xwyz"), "n2": "31%"})
    assert [r.question_id for r in result.results] == [q.id for q in mini.questions]
    assert result.points == F(1, 2) + F(2) + F(2)
    assert result.max_points == 12  # t1 (2 manual points) is not in the automatic total
    assert result.score == F(9, 24)
    assert not result.passed
    assert result.answered == 3


def test_pass_mark_is_compared_exactly() -> None:
    # 7 of 10 against 0.7: with floats 0.7 * 10 might not be exactly 7.
    results = QuizResult("q", "t", (), F(7, 10))
    assert results.score == 0 and not results.passed
    from labcoat.quiz.engine import QuestionResult

    tenths = tuple(QuestionResult(f"q{i}", "single", F(1 if i < 7 else 0), 1, i < 7, "") for i in range(10))
    assert QuizResult("q", "t", tenths, F(7, 10)).passed
    assert not QuizResult("q", "t", tenths[:6] + tenths[7:] + tenths[7:8], F(7, 10)).passed


def test_unknown_question_in_mapping(mini: Quiz) -> None:
    with pytest.raises(AnswerFormatError, match="no question 'zz'"):
        score_quiz(mini, {"zz": "a"})


def test_to_dict_for_json(mini: Quiz) -> None:
    data = score_quiz(mini, {"m1": ["a", "b"], "s1": "a"}).to_dict()
    assert data["points"] == 2.5 and data["max_points"] == 12 and data["passed"] is False
    assert data["score"] == round(2.5 / 12, 4) and data["manual_points"] == 2
    m1 = next(q for q in data["questions"] if q["id"] == "m1")
    assert m1 == m1 | {"points": 0.5, "max_points": 3, "correct": False, "answered": True, "type": "multiple"}
    assert as_number(F(1, 3)) == 0.3333 and as_number(F(4)) == 4 and isinstance(as_number(F(4)), int)


# ----------------------------------------------------------------------------- typed input (interactive)


def test_parse_typed_uses_the_shown_letters(mini: Quiz) -> None:
    pres = {pq.question.id: pq for pq in present(mini, 3).questions}
    s1 = pres["s1"]
    letter = s1.labels[s1.options.index("a")]
    assert parse_typed(s1, letter.lower()) == "a"
    m1 = pres["m1"]
    letters = [m1.labels[m1.options.index(c)] for c in ("c", "a")]
    assert parse_typed(m1, " ".join(letters)) == ("a", "c")
    assert parse_typed(m1, "".join(letters)) == ("a", "c")
    o1 = pres["o1"]
    typed = " ".join(o1.labels[o1.options.index(i)] for i in "wxyz")
    assert parse_typed(o1, typed) == tuple("wxyz")
    assert parse_typed(pres["n2"], "30 %") == "30 %"
    assert parse_typed(pres["s1"], "  ") is None


@pytest.mark.parametrize(
    ("qid", "typed", "message"),
    [
        ("s1", "Z", "not one of the letters shown"),
        ("s1", "A B", "exactly one letter"),
        ("m1", "A A", "each letter once"),
        ("o1", "A B", "all 4 letters"),
        ("n2", "lots", "not a number"),
    ],
)
def test_parse_typed_errors(mini: Quiz, qid: str, typed: str, message: str) -> None:
    pq = next(pq for pq in present(mini, 3).questions if pq.question.id == qid)
    with pytest.raises(AnswerFormatError, match=message):
        parse_typed(pq, typed)


# ----------------------------------------------------------------------------- purity


def test_engine_imports_no_docker_pytest_or_ui() -> None:
    code = (
        "import sys, labcoat.quiz.engine, labcoat.quiz.answers;"
        "print(sorted(m for m in ('docker', 'pytest', 'testinfra', 'rich', 'click') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
