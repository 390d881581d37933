"""quizzes/5.3.yaml covers what the module teaches, and every question can be scored both ways."""

from __future__ import annotations

import itertools
from collections import Counter
from fractions import Fraction

import pytest

from labcoat.content.quiz import (
    BlanksQuestion,
    ExplainQuestion,
    MultipleChoice,
    NumericQuestion,
    OrderingQuestion,
    Quiz,
    SingleChoice,
)
from labcoat.quiz.engine import AnswerFormatError, normalize_answer, parse_numeric, score_answer

SCENARIOS = {
    "alert-3am": "3 AM",
    "container-vs-vm": "VM",
    "qos-who-dies": "BestEffort",
    "vmstat-thrashing": "vmstat",
    "java-pod-512mi": "512Mi",
}


def test_header(quiz53: Quiz) -> None:
    assert quiz53.schema_version == 1
    assert quiz53.id == "5.3"
    assert quiz53.title == "Linux Performance, Module 5.3: Memory Management"
    assert 0 < quiz53.pass_mark <= 1


def test_at_least_37_questions_of_every_type(quiz53: Quiz) -> None:
    assert len(quiz53.questions) >= 37
    kinds = Counter(q.type for q in quiz53.questions)
    assert set(kinds) == {"single", "multiple", "numeric", "blanks", "ordering", "explain"}
    assert kinds["explain"] >= 4 and kinds["blanks"] >= 3
    assert any(isinstance(q, NumericQuestion) and q.kind == "bytes" for q in quiz53.questions)
    assert any(isinstance(q, NumericQuestion) and q.unit for q in quiz53.questions)


NEW_TOPICS = {  # issue 14: the module's thin topics, each asked in at least one question
    "vsz-vs-rss": "VSZ", "vsz-rss-bytes": "KiB", "leak-trend": "leak", "leak-next-step": "leaking",
    "leak-explain": "leak", "swappiness-default": "swappiness", "swappiness-claims": "swappiness",
    "vmstat-swap-columns": "vmstat", "eviction-memory-available": "memory.available",
    "memory-stat-fields": "memory.stat", "cgroup-v1-v2-files": "v1", "dirty-page-life": "write()",
    "dirty-ratios": "dirty",
}


def test_the_thin_topics_are_asked_in_every_type(quiz53: Quiz) -> None:
    for qid, word in NEW_TOPICS.items():
        assert word in quiz53.question(qid).prompt, qid
    kinds = {quiz53.question(qid).type for qid in NEW_TOPICS}
    assert kinds == {"single", "multiple", "numeric", "blanks", "ordering", "explain"}


def test_every_scenario_of_the_module_is_asked(quiz53: Quiz) -> None:
    for qid, word in SCENARIOS.items():
        q = quiz53.question(qid)
        assert "scenario" in q.tags and word in q.prompt, qid
    prompts = " ".join(q.prompt for q in quiz53.questions)
    assert "Pause and predict" in prompts and "Stop and think" in prompts


def test_key_facts_are_asked(quiz53: Quiz) -> None:
    answers = {q.id: q.answer for q in quiz53.questions if isinstance(q, NumericQuestion)}
    assert answers["qos-adj-guaranteed"] == -997
    assert answers["oom-score-adj-never"] == -1000
    assert answers["eviction-default"] == "100Mi"
    assert answers["qos-adj-burstable"] == 750
    order = quiz53.question("qos-kill-order")
    assert [i.id for i in order.items] == ["batch", "api", "cache", "db", "kubelet"]
    clamp = quiz53.question("qos-adj-clamp")
    assert next(c.text for c in clamp.choices if c.correct) == "X 999, Y 3"


def test_explanations_teach(quiz53: Quiz) -> None:
    for q in quiz53.questions:
        assert len(q.explanation.split()) >= 25, f"{q.id}: the explanation is too short to teach"


def test_correct_choices_are_spread_over_the_ids(quiz53: Quiz) -> None:
    right = Counter(c.id for q in quiz53.questions if isinstance(q, SingleChoice) for c in q.choices if c.correct)
    assert len(right) >= 3 and max(right.values()) <= 6, right


def test_every_wrong_single_choice_has_feedback(quiz53: Quiz) -> None:
    for q in quiz53.questions:
        if isinstance(q, SingleChoice | MultipleChoice):
            for c in q.choices:
                if not c.correct and isinstance(q, SingleChoice) and q.id not in ("predict-memcg-victim",):
                    assert c.feedback, (q.id, c.id)


def model_answer(q: object) -> object:
    if isinstance(q, SingleChoice):
        return next(c.id for c in q.choices if c.correct)
    if isinstance(q, MultipleChoice):
        return [c.id for c in q.choices if c.correct]
    if isinstance(q, OrderingQuestion):
        return [i.id for i in q.items]
    if isinstance(q, NumericQuestion):
        return q.answer
    if isinstance(q, BlanksQuestion):
        return {b.id: b.accept[0] if b.kind == "token" else b.answer for b in q.blanks}
    assert isinstance(q, ExplainQuestion)
    return q.model_answer


def test_right_answers_score_full_marks(quiz53: Quiz) -> None:
    for q in quiz53.questions:
        result = score_answer(q, model_answer(q))
        if isinstance(q, ExplainQuestion):
            assert (result.points, result.max_points, result.manual_points) == (0, 0, q.points), q.id
        else:
            assert result.correct and result.points == q.points, q.id


# ----------------------------------------------------------------------------- every auto-scored part is exact


def other_answers(q: object) -> list[object]:
    """Every other answer a question can get: all other choices, all other tick sets, all other orders
    (up to 5 items: 119 of them), each blank's mistakes and a wrong token/value, each numeric mistake."""
    if isinstance(q, SingleChoice):
        return [c.id for c in q.choices if not c.correct]
    if isinstance(q, MultipleChoice):
        ids = [c.id for c in q.choices]
        right = {c.id for c in q.choices if c.correct}
        subsets = itertools.chain.from_iterable(itertools.combinations(ids, k) for k in range(1, len(ids) + 1))
        return [list(s) for s in subsets if set(s) != right]
    if isinstance(q, OrderingQuestion):
        truth = tuple(i.id for i in q.items)
        return [list(p) for p in itertools.permutations(truth) if p != truth]
    if isinstance(q, NumericQuestion):
        return [m.value for m in q.mistakes]
    assert isinstance(q, BlanksQuestion)
    right = model_answer(q)
    assert isinstance(right, dict)
    out: list[object] = []
    for b in q.blanks:
        wrong = [m.value for m in b.mistakes] + (["wrong-token"] if b.kind == "token" else [])
        out += [{**right, b.id: w} for w in wrong]
        out.append({k: v for k, v in right.items() if k != b.id})  # that blank left empty
    return out


def test_every_other_answer_scores_less_and_points_add_up(quiz53: Quiz) -> None:
    auto = [q for q in quiz53.questions if not isinstance(q, ExplainQuestion)]
    assert sum(q.points for q in auto) == quiz53.max_points == 67
    assert sum(q.points for q in quiz53.questions if isinstance(q, ExplainQuestion)) == quiz53.manual_points == 15
    tried = 0
    for q in auto:
        full = score_answer(q, model_answer(q))
        assert full.points == q.points and full.max_points == q.points, q.id
        if isinstance(q, BlanksQuestion):
            assert sum(b.points for b in q.blanks) == q.points
        others = other_answers(q)
        assert others, f"{q.id}: no wrong answer to try"
        for answer in others:
            result = score_answer(q, answer)
            assert Fraction(0) <= result.points < q.points, (q.id, answer, result.points)
            assert not result.correct, (q.id, answer)
            tried += 1
    assert tried > 600  # every subset and every permutation (646 answers), not a sample


def test_numeric_mistakes_are_wrong_answers(quiz53: Quiz) -> None:
    for q in quiz53.questions:
        if isinstance(q, NumericQuestion):
            for m in q.mistakes:
                assert not score_answer(q, normalize_answer(q, m.value)).correct, (q.id, m.value)


def test_size_answers_follow_the_question_s_units(quiz53: Quiz) -> None:
    q = quiz53.question("limit-in-bytes")  # a Kubernetes question
    for text in ("10Gi", "10240Mi", "10737418240", "10485760Ki", "10 Gi"):
        assert score_answer(q, text).correct, text
    for text in ("10G", "10240M", "1e10"):  # decimal in Kubernetes: 10^10 and 1.024 * 10^10 bytes
        assert not score_answer(q, text).correct, text
    for text in ("10GB", "10 GiB", "10g", "10K"):  # not Kubernetes quantities: refused, never guessed
        with pytest.raises(AnswerFormatError, match="not a Kubernetes quantity"):
            normalize_answer(q, text)
    assert parse_numeric(quiz53.question("eviction-default"), "100Mi") == 104857600
    assert parse_numeric(quiz53.question("eviction-default"), "100M") == 100_000_000
    docker = quiz53.question("docker-default-swap")  # a Docker question: binary, any case, b optional
    for text in ("128m", "128M", "128MiB", "128MB", "131072k", "134217728"):
        assert score_answer(docker, text).correct, text
    procfs = quiz53.question("vsz-rss-bytes")  # a procfs question: kB is KiB
    for text in ("307200 kB", "307200kB", "307200 KiB", "300 MiB", "300M", "314572800"):
        assert score_answer(procfs, text).correct, text
    assert not score_answer(procfs, "307200").correct  # a plain number is bytes
    assert "reads kB as 1000" in score_answer(procfs, "307200000").feedback
