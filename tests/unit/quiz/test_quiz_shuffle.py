"""Seeded shuffling: reproducible, independent per question, follow-ups kept together."""

from __future__ import annotations

from labcoat.content.quiz import OrderingQuestion, Quiz
from labcoat.quiz.engine import option_order, present


def order(quiz: Quiz, seed: int) -> list[str]:
    return [pq.question.id for pq in present(quiz, seed).questions]


def test_same_seed_same_order(quiz53: Quiz) -> None:
    assert order(quiz53, 42) == order(quiz53, 42)
    assert present(quiz53, 42) == present(quiz53, 42)


def test_known_order_is_stable_across_runs(mini: Quiz) -> None:
    # random.Random(str) hashes with SHA-512: this must not change between Python runs or machines.
    assert order(mini, 1) == order(mini, 1)
    assert len({tuple(order(mini, s)) for s in range(20)}) > 1


def test_different_seeds_differ(quiz53: Quiz) -> None:
    orders = {tuple(order(quiz53, s)) for s in range(10)}
    assert len(orders) == 10


def test_every_question_exactly_once_numbered_from_one(quiz53: Quiz) -> None:
    pres = present(quiz53, 7)
    assert sorted(order(quiz53, 7)) == sorted(q.id for q in quiz53.questions)
    assert [pq.number for pq in pres.questions] == list(range(1, len(quiz53.questions) + 1))


def test_follow_ups_stay_right_after_their_question(quiz53: Quiz) -> None:
    follows = {q.id: q.follows for q in quiz53.questions if q.follows}
    assert len(follows) == 10  # including a chain: leak-trend -> leak-next-step -> leak-explain
    for seed in range(30):
        ids = order(quiz53, seed)
        for follower, leader in follows.items():
            assert ids.index(follower) == ids.index(leader) + 1, (seed, follower)


def test_choice_order_is_per_question_and_seeded(quiz53: Quiz) -> None:
    q = quiz53.question("common-mistakes")
    assert option_order(quiz53, q, 5) == option_order(quiz53, q, 5)
    assert sorted(option_order(quiz53, q, 5)) == sorted(c.id for c in q.choices)
    assert len({option_order(quiz53, q, s) for s in range(10)}) > 1


def test_choice_order_does_not_depend_on_question_order(quiz53: Quiz) -> None:
    pres = {pq.question.id: pq.options for pq in present(quiz53, 11).questions}
    for q in quiz53.questions:
        assert pres[q.id] == option_order(quiz53, q, 11)


def test_ordering_items_are_never_shown_in_order(quiz53: Quiz, mini: Quiz) -> None:
    for quiz in (quiz53, mini):
        for q in quiz.questions:
            if isinstance(q, OrderingQuestion):
                truth = tuple(i.id for i in q.items)
                for seed in range(200):
                    shown = option_order(quiz, q, seed)
                    assert shown != truth and sorted(shown) == sorted(truth)


def test_no_shuffle_when_the_quiz_says_so(mini: Quiz) -> None:
    fixed = mini.model_copy(update={"shuffle_questions": False, "shuffle_choices": False})
    # File order, except that t1 (follows: s1) is moved right after s1.
    assert order(fixed, 3) == ["s1", "t1", "m1", "n1", "n2", "n3", "o1"]
    s1 = fixed.question("s1")
    assert option_order(fixed, s1, 3) == ("a", "b", "c")
