"""quizzes/5.3.yaml covers what the module teaches, and every question can be scored both ways."""

from __future__ import annotations

from collections import Counter

from labcoat.content.quiz import (
    MultipleChoice,
    NumericQuestion,
    OrderingQuestion,
    Quiz,
    SingleChoice,
    TextQuestion,
)
from labcoat.quiz.engine import normalize_answer, parse_numeric, score_answer

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


def test_at_least_twenty_questions_of_every_type(quiz53: Quiz) -> None:
    assert len(quiz53.questions) >= 20
    kinds = Counter(q.type for q in quiz53.questions)
    assert set(kinds) == {"single", "multiple", "numeric", "ordering", "text"}
    assert kinds["text"] >= 4
    assert any(isinstance(q, NumericQuestion) and q.kind == "bytes" for q in quiz53.questions)
    assert any(isinstance(q, NumericQuestion) and q.unit for q in quiz53.questions)


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
                if not c.correct and isinstance(q, SingleChoice) and q.id != "predict-memcg-victim":
                    assert c.feedback, (q.id, c.id)


def test_right_answers_score_full_marks(quiz53: Quiz) -> None:
    for q in quiz53.questions:
        if isinstance(q, SingleChoice):
            answer: object = next(c.id for c in q.choices if c.correct)
        elif isinstance(q, MultipleChoice):
            answer = [c.id for c in q.choices if c.correct]
        elif isinstance(q, OrderingQuestion):
            answer = [i.id for i in q.items]
        elif isinstance(q, NumericQuestion):
            answer = q.answer
        else:
            assert isinstance(q, TextQuestion)
            answer = q.model_answer
        assert score_answer(q, answer).correct, q.id


def test_numeric_mistakes_are_wrong_answers(quiz53: Quiz) -> None:
    for q in quiz53.questions:
        if isinstance(q, NumericQuestion):
            for m in q.mistakes:
                assert not score_answer(q, normalize_answer(q, m.value)).correct, (q.id, m.value)


def test_size_answers_accept_every_notation(quiz53: Quiz) -> None:
    q = quiz53.question("limit-in-bytes")
    for text in ("10Gi", "10240M", "10737418240", "10 GiB", "10485760Ki"):
        assert score_answer(q, text).correct, text
    assert parse_numeric(quiz53.question("eviction-default"), "100Mi") == 104857600
