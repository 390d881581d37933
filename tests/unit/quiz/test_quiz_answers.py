"""Answers files: the hand-computed scores of the files under answers/, malformed files, the template."""

from __future__ import annotations

from fractions import Fraction as F
from pathlib import Path

import pytest
import yaml

from labcoat.content.quiz import Quiz
from labcoat.errors import USAGE, ContentError
from labcoat.quiz.answers import AnswersError, AnswersErrors, load_answers, template
from labcoat.quiz.engine import score_quiz

# ----------------------------------------------------------------------------- the mini quiz (12 points + 2 manual)

MINI_EXPECTED = {
    "mini-all-correct.yaml": {"s1": 2, "m1": 3, "n1": 1, "n2": 2, "n3": 1, "o1": 3, "t1": 0},
    "mini-all-wrong.yaml": {"s1": 0, "m1": 0, "n1": 0, "n2": 0, "n3": 0, "o1": 0, "t1": 0},
    "mini-partial.yaml": {"s1": 0, "m1": F(1, 2), "n1": 1, "n2": 2, "n3": 1, "o1": 2, "t1": 0},
    "mini-keyword-stuffed.yaml": {"s1": 2, "m1": 3, "n1": 1, "n2": 2, "n3": 1, "o1": 3, "t1": 0},
}
MINI_TOTALS = {
    "mini-all-correct.yaml": (F(12), True),
    "mini-all-wrong.yaml": (F(0), False),
    "mini-partial.yaml": (F(13, 2), False),  # 13/24 < 0.6
    "mini-keyword-stuffed.yaml": (F(12), True),  # the keyword list earns nothing; the structured part is right
}


@pytest.mark.parametrize("name", sorted(MINI_EXPECTED))
def test_mini_answer_files(mini: Quiz, answers_dir: Path, name: str) -> None:
    result = score_quiz(mini, load_answers(answers_dir / name, mini))
    assert {r.question_id: r.points for r in result.results} == {k: F(v) for k, v in MINI_EXPECTED[name].items()}
    assert (result.points, result.passed) == MINI_TOTALS[name]


# ----------------------------------------------------------------------------- the 5.3 quiz (67 points + 15 manual)

PARTIAL_53 = {
    "alert-3am": 2,
    "alert-3am-explain": 0,  # explanations never earn automatic points
    "container-vs-vm": 0,
    "container-vs-vm-explain": 0,  # left out
    "qos-who-dies": 2,
    "qos-who-dies-why": 0,
    "vmstat-thrashing": 2,
    "vmstat-next-steps": F(2, 3),
    "java-pod-512mi": 2,
    "java-pod-explain": 0,  # empty
    "predict-cache-fill": 1,
    "predict-free-in-container": 0,
    "predict-memcg-victim": 2,
    "oom-score-adj-never": 0,
    "psi-some-full": 1,
    "psi-avg10-percent": 1,
    "oomkilled-flag": 1,
    "oom-evidence-in-container": 1,
    "free-columns": F(4, 3),
    "meminfo-available": 1,
    "meminfo-not-droppable": F(4, 3),
    "qos-adj-guaranteed": 1,
    "qos-adj-burstable": 0,
    "qos-adj-clamp": 1,
    "qos-kill-order": F(12, 5),
    "eviction-default": 0,  # 100M on a Kubernetes question is 10^8 bytes, not 100Mi
    "docker-default-swap": 0,
    "limit-in-bytes": 1,
    "common-mistakes": F(4, 3),
    "vsz-vs-rss": 0,
    "vsz-rss-bytes": 0,
    "leak-trend": 0,
    "leak-next-step": 0,
    "leak-explain": 0,
    "swappiness-default": 0,
    "swappiness-claims": 0,
    "vmstat-swap-columns": 0,
    "eviction-memory-available": 1,
    "memory-stat-fields": 0,
    "cgroup-v1-v2-files": 2,
    "dirty-page-life": 2,
    "dirty-ratios": 0,
}
UNANSWERED_53 = {
    "container-vs-vm-explain", "java-pod-explain", "vsz-vs-rss", "leak-trend", "leak-next-step", "leak-explain",
    "swappiness-default", "vmstat-swap-columns", "memory-stat-fields", "dirty-ratios",
}


def load53(quiz53: Quiz, answers_dir: Path, name: str):  # noqa: ANN201
    return score_quiz(quiz53, load_answers(answers_dir / name, quiz53))


def test_53_all_correct(quiz53: Quiz, answers_dir: Path) -> None:
    result = load53(quiz53, answers_dir, "5.3-all-correct.yaml")
    assert (quiz53.max_points, quiz53.manual_points) == (67, 15)
    assert result.points == 67 and result.score == 1 and result.passed
    assert all(r.correct for r in result.results if not r.manual)
    manual = [r for r in result.results if r.manual]
    assert len(manual) == 5 and all(r.answered and r.points == 0 and r.max_points == 0 for r in manual)
    assert result.manual_points == 15


def test_53_all_wrong(quiz53: Quiz, answers_dir: Path) -> None:
    result = load53(quiz53, answers_dir, "5.3-all-wrong.yaml")
    assert result.points == 0 and not result.passed
    assert result.answered == len(quiz53.questions)  # every one answered, every one wrong


def test_53_partial(quiz53: Quiz, answers_dir: Path) -> None:
    result = load53(quiz53, answers_dir, "5.3-partial.yaml")
    assert {r.question_id: r.points for r in result.results} == {k: F(v) for k, v in PARTIAL_53.items()}
    assert result.points == F(466, 15)
    assert result.score == F(466, 1005)
    assert not result.passed
    unanswered = {r.question_id for r in result.results if not r.answered}
    assert unanswered == UNANSWERED_53


def test_53_keyword_stuffed(quiz53: Quiz, answers_dir: Path) -> None:
    result = load53(quiz53, answers_dir, "5.3-keyword-stuffed.yaml")
    explain = {r.question_id: r.points for r in result.results if r.manual}
    assert explain == dict.fromkeys(
        ("alert-3am-explain", "container-vs-vm-explain", "qos-who-dies-why", "java-pod-explain", "leak-explain"), 0
    )
    assert result.points == 67  # the keyword lists add nothing; the structured part is all right


# ----------------------------------------------------------------------------- malformed files


def error_of(quiz: Quiz, path: Path) -> ContentError | AnswersErrors:
    with pytest.raises((AnswersError, AnswersErrors)) as info:
        load_answers(path, quiz)
    assert info.value.exit_code == USAGE
    return info.value


@pytest.mark.parametrize(
    ("name", "line", "message", "hint"),
    [
        ("malformed-unknown-question.yaml", 4, "answers.alert-3pm: quiz 5.3 has no question 'alert-3pm'", "did you mean 'alert-3am'?"),
        ("malformed-syntax.yaml", 5, "YAML syntax error", "indentation"),
        ("malformed-other-quiz.yaml", 1, "these answers are for quiz '5.2', not '5.3'", "lab quiz 5.2"),
        ("malformed-top-level.yaml", 1, "the top level must be a mapping", "--template"),
        ("malformed-duplicate.yaml", 5, "duplicate key 'alert-3am' (first defined on line 3)", "YAML keeps only the last"),
    ],
)
def test_malformed_single_error(quiz53: Quiz, answers_dir: Path, name: str, line: int, message: str, hint: str) -> None:
    err = error_of(quiz53, answers_dir / name)
    assert isinstance(err, AnswersError)
    assert err.path == str(answers_dir / name)
    assert err.line == line
    assert message in err.message
    assert err.hint and hint in err.hint
    assert str(err).startswith(f"{answers_dir / name}:{line}:")


def test_malformed_several_errors_at_once(quiz53: Quiz, answers_dir: Path) -> None:
    err = error_of(quiz53, answers_dir / "malformed-several.yaml")
    assert isinstance(err, AnswersErrors)
    found = [(e.line, e.message) for e in err.errors]
    expected = [
        (3, "answers.alert-3am (single choice): unknown choice 'e'; the choices are: a, b, c, d"),
        (4, "answers.qos-kill-order (ordering): item(s) cache, db, kubelet missing"),
        (5, "answers.qos-adj-burstable (number): not a number: 'lots'"),
        (6, "answers.psi-avg10-percent (number): not a number: '30 s'"),
        (7, "answers.predict-memcg-victim (single choice): pick one choice, not a list"),
        (8, "answers.java-pod-explain (explain (graded by people)): expected a few sentences of text, found a list"),
        (9, "answers.oomkilled-flag (multiple choice): choice 'c' is ticked twice"),
        (10, "answers.eviction-default (number): expected a size such as 10Gi, 10G, 100Mi"),
    ]
    assert len(found) == len(expected)
    for (line, message), (want_line, want) in zip(found, expected, strict=True):
        assert line == want_line and message.startswith(want), (line, message)
    assert all(e.hint for e in err.errors)


def test_missing_answers_key(quiz53: Quiz, answers_dir: Path) -> None:
    err = error_of(quiz53, answers_dir / "malformed-no-answers.yaml")
    assert isinstance(err, AnswersErrors)
    assert [e.message for e in err.errors] == ["unknown key 'answer'", "missing 'answers'"]


def test_newer_schema_version(tmp_path: Path, mini: Quiz) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("schema_version: 2\nanswers: {}\n")
    err = error_of(mini, path)
    assert "written for schema_version 2" in str(err)


def test_empty_file_and_empty_answers(tmp_path: Path, mini: Quiz) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert "the file is empty" in str(error_of(mini, empty))
    blank = tmp_path / "blank.yaml"
    blank.write_text("answers:\n")
    assert load_answers(blank, mini) == {}


def test_missing_file(tmp_path: Path, mini: Quiz) -> None:
    err = error_of(mini, tmp_path / "nope.yaml")
    assert "cannot read" in str(err)


# ----------------------------------------------------------------------------- the template


def fill(text: str, answers: dict[str, str]) -> str:
    for qid, value in answers.items():
        text = text.replace(f"\n  {qid}:\n", f"\n  {qid}: {value}\n")
    return text


def test_template_round_trips(tmp_path: Path, quiz53: Quiz, answers_dir: Path) -> None:
    text = template(quiz53, 0)
    data = yaml.safe_load(text)
    assert data["schema_version"] == 1 and data["quiz"] == "5.3"
    assert set(data["answers"]) == {q.id for q in quiz53.questions}
    assert all(v is None for v in data["answers"].values())
    path = tmp_path / "t.yaml"
    path.write_text(text)
    answers = load_answers(path, quiz53)
    assert score_quiz(quiz53, answers).points == 0

    right = load_answers(answers_dir / "5.3-all-correct.yaml", quiz53)
    flow = {k: yaml.safe_dump(list(v) if isinstance(v, tuple) else v, default_flow_style=True, width=10_000)
            .strip().removesuffix("...").strip() for k, v in right.items()}
    path.write_text(fill(text, flow))
    assert score_quiz(quiz53, load_answers(path, quiz53)).points == 67


def test_template_lists_choices_and_items_by_id(quiz53: Quiz) -> None:
    text = template(quiz53, 0)
    assert "#   b) Nothing is wrong: `available` is 12430 MiB" in text
    assert "#   kubelet: the kubelet itself" in text
    assert "Answer: a list of all 5 item ids, killed first." in text
    assert "Answer: a size such as 10Gi, 10G, 100Mi or 104857600." in text
    assert "Units: Sizes are Kubernetes quantities" in text  # the convention is stated with the question
    assert "Units: Sizes follow /proc/meminfo and free: kB means KiB" in text
    assert "qos-who-dies-why: |" in text  # the block example for explanations
    assert "cgroup-v1-v2-files: {limit-v1: ..., limit-v2: ..." in text


def test_template_order_follows_the_seed(quiz53: Quiz) -> None:
    assert template(quiz53, 1) == template(quiz53, 1)
    assert template(quiz53, 1) != template(quiz53, 2)
