"""The free-text rubric (docs/quiz.md "Free text"): concepts, contradictions and the keyword-list guard."""

from __future__ import annotations

from fractions import Fraction as F

import pytest

from labcoat.content.quiz import Quiz, TextQuestion
from labcoat.quiz.engine import (
    analyse_text,
    has_verb,
    is_negated,
    score_answer,
    split_sentences,
    synonym_regex,
    words,
)


def statuses(q: TextQuestion, text: str) -> dict[str, str]:
    return {c.id: c.status for c in analyse_text(q, text).concepts}


# ----------------------------------------------------------------------------- building blocks


def test_sentences_split_at_punctuation_blank_lines_and_bullets() -> None:
    text = "One two\nthree. Four!\n\nFive\n- six\n* seven; eight\n1. nine"
    assert split_sentences(text) == ["One two three.", "Four!", "Five", "six", "seven;", "eight", "nine"]


def test_abbreviations_do_not_end_sentences() -> None:
    assert split_sentences("Caches, e.g. the page cache, are reclaimed.") == [
        "Caches, eg the page cache, are reclaimed."
    ]


def test_words_keep_technical_tokens_whole() -> None:
    assert words("oom_score_adj is -997 in /proc/PID/oom_score_adj, 30% of it") == [
        "oom_score_adj", "is", "997", "in", "proc/PID/oom_score_adj", "30%", "of", "it",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The kernel reclaims the cache.", True),
        ("It's fine.", True),
        ("available memory doesn't drop", True),
        ("Killed by the kernel", True),  # -ed rule, capitalised first letter
        ("page cache, available, PSI", False),
        ("OOMKilled, cgroup limit, swap", False),  # OOMKilled is not a past tense
        ("memory limit, OOM kill, working set", False),  # nouns that are also verbs are left out
    ],
)
def test_has_verb(text: str, expected: bool) -> None:
    assert has_verb(text) is expected


@pytest.mark.parametrize(
    ("phrase", "text", "hit"),
    [
        ("page cache", "the page-cache is", True),
        ("page cache", "the pagecache is", True),
        ("page cache", "page caches are", True),
        ("page cache", "PAGE CACHE", True),
        ("oom_score", "its oom score", True),
        ("oom_score", "oom_score_adj", False),
        ("score", "oom_score_adj", False),
        ("limit", "unlimited", False),
    ],
)
def test_synonyms_match_whole_words(phrase: str, text: str, hit: bool) -> None:
    assert bool(synonym_regex(phrase).search(text)) is hit


def test_negation_window_is_five_words_before() -> None:
    s = "It is a myth that free memory is what matters"
    assert is_negated(s, s.index("free"))
    s = "Free memory is what matters"
    assert not is_negated(s, 0)
    s = "It is not true, as the first two of my many colleagues say, that free memory is what matters"
    assert not is_negated(s, s.index("free"))  # the 'not' is more than 5 words back


# ----------------------------------------------------------------------------- the mini quiz's t1 (2 points, 3 concepts)


def test_model_answer_full_marks(mini: Quiz) -> None:
    q = mini.question("t1")
    result = score_answer(q, q.model_answer)
    assert result.points == 2 and result.correct
    assert statuses(q, q.model_answer) == {"cache": "stated", "avail": "stated", "signal": "missing"}


def test_concepts_beyond_the_points_are_capped(mini: Quiz) -> None:
    text = "The page cache is reclaimed on demand, so available memory and PSI pressure are what matter here."
    q = mini.question("t1")
    analysis = analyse_text(q, text)
    assert [c.status for c in analysis.concepts] == ["stated"] * 3
    assert score_answer(q, text).points == 2  # 3 earned, capped at the question's 2


@pytest.mark.parametrize(
    "text",
    [
        "page cache, available, PSI",  # a list, no verb
        "page cache\navailable\nPSI",  # one per line without bullets: one verb-less sentence
        "- page cache\n- available\n- PSI",  # bullets: three verb-less sentences
        "Page cache available PSI pressure is good here ok",  # a verb, but 9 words for 3 concepts (needs 12)
        "Page cache is available.",  # 4 words: fewer than min_words (8)
    ],
)
def test_keyword_lists_get_fragment_credit_only(mini: Quiz, text: str) -> None:
    q = mini.question("t1")
    result = score_answer(q, text)
    assert not result.correct
    earned = {c.id: c.points for c in analyse_text(q, text).concepts}
    assert all(p in (F(0), F(1, 2)) for p in earned.values()), earned
    assert result.points == min(F(2), sum(earned.values(), F(0)))
    assert result.points <= F(3, 2)


def test_keyword_list_exact_score(mini: Quiz) -> None:
    q = mini.question("t1")
    assert score_answer(q, "page cache, available, PSI").points == F(3, 2)
    assert score_answer(q, "Page cache is available.").points == F(1)  # two fragments
    assert "½" in score_answer(q, "page cache, available, PSI").feedback


def test_a_sentence_per_concept_is_fine(mini: Quiz) -> None:
    text = "The page cache gets reclaimed whenever programs need memory. Look at available memory instead."
    assert score_answer(mini.question("t1"), text).points == 2


def test_contradiction_cancels_the_concept(mini: Quiz) -> None:
    q = mini.question("t1")
    text = "Free memory is what matters, although the page cache is reclaimed and available memory is high."
    assert statuses(q, text) == {"cache": "stated", "avail": "contradicted", "signal": "missing"}
    result = score_answer(q, text)
    assert result.points == 1 and not result.correct
    assert "cancelled" in result.feedback and "Free memory is what matters" in result.feedback


def test_negated_contradiction_does_not_cancel(mini: Quiz) -> None:
    q = mini.question("t1")
    for text in (
        "It is a myth that free memory is what matters; the page cache is reclaimed and available memory counts.",
        "Free memory is not what matters: the page cache is reclaimed, so available memory is the real number.",
        "People think wrongly that free memory is what matters, but the page cache is reclaimed and available counts.",
    ):
        assert score_answer(q, text).points == 2, text


def test_contradiction_wins_over_a_correct_statement(mini: Quiz) -> None:
    q = mini.question("t1")
    text = "The page cache is reclaimed on demand. The cache is wasted memory, and available memory is what matters."
    assert statuses(q, text)["cache"] == "contradicted"
    assert score_answer(q, text).points == 1


def test_empty_and_irrelevant(mini: Quiz) -> None:
    q = mini.question("t1")
    assert not score_answer(q, "").answered
    assert score_answer(q, "I do not know the answer to this question, sorry about that.").points == 0


def test_short_answer_feedback_asks_for_sentences(mini: Quiz) -> None:
    fb = score_answer(mini.question("t1"), "available").feedback
    assert "write at least 8" in fb
    assert "A full-marks answer:" in fb


# ----------------------------------------------------------------------------- the 5.3 quiz's text questions


def text_questions(quiz: Quiz) -> list[TextQuestion]:
    return [q for q in quiz.questions if isinstance(q, TextQuestion)]


def test_every_model_answer_earns_full_marks(quiz53: Quiz) -> None:
    assert len(text_questions(quiz53)) >= 4
    for q in text_questions(quiz53):
        result = score_answer(q, q.model_answer)
        assert result.correct, (q.id, result.feedback)


def test_listing_every_synonym_never_earns_full_marks(quiz53: Quiz) -> None:
    for q in text_questions(quiz53):
        stuffed = ", ".join(s for c in q.concepts for s in c.synonyms) or "x"
        assert not score_answer(q, stuffed).correct, q.id
        # ... and neither does the model answer reduced to its keywords without verbs.
        keywords = " ".join(w for w in q.model_answer.split() if not has_verb(w))
        assert not score_answer(q, keywords).correct, (q.id, keywords)


@pytest.mark.parametrize(
    ("qid", "text", "points", "cancelled"),
    [
        (
            "alert-3am-explain",
            "Free memory is what matters, so the alert was right. The page cache is reclaimable and available is high.",
            F(1),
            "available-matters",
        ),
        ("alert-3am-explain", "Dropping the caches fixes it.", F(0), "cache-reclaimable"),
        (
            "container-vs-vm-explain",
            "The kubelet killed the pod because of the limit. The VM was swapping instead of dying.",
            F(2),
            "oom-kill",
        ),
        (
            "qos-who-dies-why",
            "The Guaranteed daemon dies first because it has a limit of 256Mi and the kernel picks the highest score.",
            F(1),
            "besteffort-first",
        ),
        (
            "qos-who-dies-why",
            "The BestEffort worker is killed first because BestEffort gets -997 and Guaranteed gets 1000 in its score.",
            F(2),
            "adj-values",
        ),
        (
            "java-pod-explain",
            "kubectl top shows the real memory usage, the JVM must be lying. Only the heap counts.",
            F(0),
            "working-set",
        ),
    ],
)
def test_53_misconceptions_are_cancelled(quiz53: Quiz, qid: str, text: str, points: F, cancelled: str) -> None:
    q = quiz53.question(qid)
    assert statuses(q, text)[cancelled] == "contradicted"
    assert score_answer(q, text).points == points


@pytest.mark.parametrize(
    ("qid", "text"),
    [
        ("alert-3am-explain", "Instead of alerting on free memory, alert on MemAvailable, because buff/cache gets reclaimed by the kernel when apps need memory."),
        ("alert-3am-explain", "Free memory is not what matters: the page cache is reclaimed when needed, so watch available memory instead."),
        ("container-vs-vm-explain", "The container has a memory limit so it got OOM killed, the VM swapped instead."),
        ("qos-who-dies-why", "The batch worker gets killed first because BestEffort has oom_score_adj 1000 while Guaranteed has -997, and the kernel adds it to the badness score."),
        ("java-pod-explain", "The emptyDir is tmpfs and counts against the limit, and kubectl top shows the working set which is sampled so it misses spikes."),
    ],
)
def test_53_other_good_answers_get_full_marks(quiz53: Quiz, qid: str, text: str) -> None:
    assert score_answer(quiz53.question(qid), text).correct


def test_wrapped_lines_are_one_sentence(quiz53: Quiz) -> None:
    q = quiz53.question("alert-3am-explain")
    wrapped = "\n".join(q.model_answer.replace(". ", ".\n").split(" "))  # every word on its own line
    assert score_answer(q, wrapped).correct


# ----------------------------------------------------------------------------- comma lists


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a, b, c, d", True),
        ("page cache, available, PSI, pressure is what I watch", True),  # 3 of 4 pieces without a verb
        ("The container has a limit, it got killed, the VM swapped, and so on", False),
        ("one, two, three", False),  # fewer than 4 pieces
    ],
)
def test_is_list(text: str, expected: bool) -> None:
    from labcoat.quiz.engine import is_list

    assert is_list(text) is expected


def test_an_enumeration_of_one_idea_is_a_sentence(quiz53: Quiz) -> None:
    q = quiz53.question("java-pod-explain")
    text = (
        "Off-heap memory, metaspace, thread stacks, direct buffers and tmpfs all count against the limit "
        "of the container."
    )
    assert statuses(q, text)["charged-memory"] == "stated"


def test_a_long_list_of_several_ideas_is_a_fragment(quiz53: Quiz) -> None:
    q = quiz53.question("container-vs-vm-explain")
    text = "hard limit, cgroup, OOM killer, SIGKILL, exit code 137, swapped, reclaimed, paging, thrashing, slow"
    assert set(statuses(q, text).values()) == {"fragment"}
    assert score_answer(q, text).points == F(3, 2)
