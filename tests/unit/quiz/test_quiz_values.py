"""Units per question, answers read as the text written, and hostile answers refused at once."""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import pytest

from labcoat.content.quiz import Quiz
from labcoat.quiz.answers import AnswersError, load_answers
from labcoat.quiz.engine import AnswerFormatError, normalize_answer, score_answer, score_quiz
from labcoat.quiz.values import parse_number, parse_size

# ----------------------------------------------------------------------------- units


@pytest.mark.parametrize(
    ("text", "units", "value"),
    [
        ("10Gi", "kubernetes", 10 * 2**30), ("10G", "kubernetes", 10 * 10**9), ("100Mi", "kubernetes", 100 * 2**20),
        ("100M", "kubernetes", 10**8), ("100m", "kubernetes", Fraction(1, 10)), ("1.5Gi", "kubernetes", 3 * 2**29),
        ("129e6", "kubernetes", 129 * 10**6), ("4k", "kubernetes", 4000), ("4Ki", "kubernetes", 4096),
        ("24684084 kB", "procfs", 24684084 * 1024), ("512 MiB", "procfs", 2**29), ("512M", "procfs", 2**29),
        ("2GB", "procfs", 2 * 2**30), ("4096", "procfs", 4096),
        ("10g", "docker", 10 * 2**30), ("10GB", "docker", 10 * 2**30), ("64m", "docker", 2**26),
    ],
)
def test_sizes_under_each_convention(text: str, units: str, value: object) -> None:
    assert parse_size(text, units) == value


@pytest.mark.parametrize("text", ["10GB", "10gb", "10g", "10K", "10 GiB", "10MB", "10Gib", "lots", "-1Gi"])
def test_kubernetes_refuses_what_is_not_a_quantity(text: str) -> None:
    with pytest.raises(AnswerFormatError):
        parse_size(text, "kubernetes")


def test_k8s_question_tells_10g_from_10gi(quiz53: Quiz) -> None:
    q = quiz53.question("limit-in-bytes")  # limits.memory: 10Gi -> memory.max
    assert q.units == "kubernetes"
    assert score_answer(q, "10Gi").correct
    wrong = score_answer(q, "10G")
    assert not wrong.correct and "10 decimal gigabytes" in wrong.feedback
    with pytest.raises(AnswerFormatError, match="there is no GB"):
        normalize_answer(q, "10GB")


def test_procfs_question_reads_kb_as_kib(quiz53: Quiz) -> None:
    q = quiz53.question("vsz-rss-bytes")
    assert q.units == "procfs"
    assert score_answer(q, "307200 kB").correct and score_answer(q, "307200kB").correct
    blank = quiz53.question("vmstat-swap-columns")
    result = score_answer(blank, {"swap-in": "si", "swap-out": "so", "si-bytes": "4820 kB"})
    assert result.correct


# ----------------------------------------------------------------------------- YAML 1.1 never decides a score


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "answers.yaml"
    path.write_text('quiz: "5.3"\nanswers:\n' + body)
    return path


def test_sexagesimal_is_not_minus_1000(quiz53: Quiz, tmp_path: Path) -> None:
    # YAML 1.1 reads -16:40 as -1000 (base 60), which was the right answer to oom-score-adj-never.
    with pytest.raises(AnswersError, match="not a number: '-16:40'"):
        load_answers(write(tmp_path, "  oom-score-adj-never: -16:40\n"), quiz53)
    assert load_answers(write(tmp_path, "  oom-score-adj-never: -1000\n"), quiz53) == {"oom-score-adj-never": "-1000"}


def test_leading_zero_is_decimal_not_octal(quiz53: Quiz, tmp_path: Path) -> None:
    # YAML 1.1 reads 0750 as octal 488 and 0755 as 493; the learner wrote decimal digits.
    answers = load_answers(write(tmp_path, "  qos-adj-burstable: 0750\n  swappiness-default: 0755\n"), quiz53)
    assert answers == {"qos-adj-burstable": "0750", "swappiness-default": "0755"}
    result = score_quiz(quiz53, answers)
    per = {r.question_id: r for r in result.results}
    assert per["qos-adj-burstable"].correct and not per["swappiness-default"].correct
    assert "You answered 755" in per["swappiness-default"].feedback


def test_yes_no_on_off_stay_words(quiz53: Quiz, tmp_path: Path) -> None:
    # `no` is the right token for the eviction blank; YAML 1.1 would make it false (and `yes` true).
    body = "  eviction-memory-available: {available: 592Mi, evicts: no, headroom: 492Mi}\n"
    answers = load_answers(write(tmp_path, body), quiz53)
    assert answers["eviction-memory-available"] == ("592Mi", "no", "492Mi")
    per = {r.question_id: r for r in score_quiz(quiz53, answers).results}
    assert per["eviction-memory-available"].correct
    wrong = load_answers(write(tmp_path, body.replace("evicts: no", "evicts: yes")), quiz53)
    per = {r.question_id: r for r in score_quiz(quiz53, wrong).results}
    assert per["eviction-memory-available"].points == 2  # 'yes' is read as the word, and it is wrong
    for word in ("yes", "on", "off", "true", "~x"):
        with pytest.raises(AnswersError, match="unknown choice"):
            load_answers(write(tmp_path, f"  alert-3am: {word}\n"), quiz53)


def test_inf_and_nan_are_not_numbers(quiz53: Quiz, tmp_path: Path) -> None:
    # The YAML reader refuses the unquoted YAML spellings (.inf, .nan) itself; the quiz refuses the words.
    for text in (".inf", "-.inf", ".nan", "inf", "nan"):
        with pytest.raises(AnswersError, match="not a (finite )?number"):
            load_answers(write(tmp_path, f"  qos-adj-guaranteed: {text}\n"), quiz53)


def test_quiz_id_is_read_as_written(quiz53: Quiz, answers_dir: Path, tmp_path: Path) -> None:
    assert load_answers(answers_dir / "malformed-quiz-id.yaml", quiz53) == {"alert-3am": "b"}  # quiz: 5.3 unquoted
    path = tmp_path / "a.yaml"
    path.write_text("quiz: 5.30\nanswers: {}\n")  # YAML 1.1 would read 5.3
    with pytest.raises(AnswersError, match="for quiz '5.30', not '5.3'"):
        load_answers(path, quiz53)


# ----------------------------------------------------------------------------- hostile answers: instant, clean


def timed_error(fn, *args):  # noqa: ANN001, ANN201
    start = time.perf_counter()
    with pytest.raises((AnswerFormatError, AnswersError)) as info:
        fn(*args)
    assert time.perf_counter() - start < 0.5, "hostile input must be refused at once"
    assert "Traceback" not in str(info.value)
    return info.value


@pytest.mark.parametrize(
    "text", ["1e999999999", "-1e999999999", "1e-999999999", "9" * 5000, "1." + "0" * 5000, "1e" + "9" * 5000,
             "9" * 5000 + "Gi", "0x1F", "1_" * 3000],
)
def test_hostile_numbers_are_clean_errors(quiz53: Quiz, text: str) -> None:
    for qid in ("qos-adj-guaranteed", "limit-in-bytes", "vsz-rss-bytes", "docker-default-swap", "psi-avg10-percent"):
        err = timed_error(normalize_answer, quiz53.question(qid), text)
        assert len(str(err)) < 300  # the message quotes the answer shortened
    timed_error(parse_number, "1e999999999")


def test_hostile_files_are_clean_errors(quiz53: Quiz, tmp_path: Path) -> None:
    cases = {
        "exponent": "  qos-adj-guaranteed: 1e999999999\n",
        "digits": "  qos-adj-guaranteed: " + "9" * 5000 + "\n",
        "digits-in-a-list": "  common-mistakes: [" + "9" * 5000 + "]\n",
        "deep-flow": "  alert-3am: " + "[" * 50000 + "]" * 50000 + "\n",
        "deep-map": "  alert-3am: " + "{a: " * 3000 + "b" + "}" * 3000 + "\n",
        "deep-block": "".join("  " * (i + 1) + f"k{i}:\n" for i in range(300)),
        "huge": "  alert-3am-explain: '" + "x" * 400_000 + "'\n",
    }
    for name, body in cases.items():
        err = timed_error(load_answers, write(tmp_path, body), quiz53)
        assert err.exit_code == 2, name


def test_interactive_blanks_ask_again_on_a_size_the_units_refuse(quiz53: Quiz) -> None:
    from rich.console import Console

    from labcoat.quiz.engine import present
    from labcoat.quiz.interactive import ask_answer

    pq = next(p for p in present(quiz53, 0).questions if p.question.id == "eviction-memory-available")
    typed = iter(["592MB", "592Mi", "no", "-"])
    console = Console(record=True, width=120)
    answer = ask_answer(console, pq, lambda _prompt: next(typed))
    assert answer == ("592Mi", "no", "")  # the third blank skipped
    shown = console.export_text()
    assert "not a Kubernetes quantity" in shown and "Sizes are Kubernetes quantities" in shown
    assert score_answer(pq.question, answer).points == 2
