"""`lab quiz`: interactive (fed through click's CliRunner), --answers, --json, --template, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from labcoat.content.quiz import (
    BlanksQuestion,
    MultipleChoice,
    NumericQuestion,
    OrderingQuestion,
    Quiz,
    SingleChoice,
)
from labcoat.quiz import progress
from labcoat.quiz.engine import present


def typed(quiz: Quiz, seed: int, *, wrong: bool = False) -> list[str]:
    """The lines a learner types to answer every question right, in the order `seed` shows them."""
    lines = []
    for pq in present(quiz, seed).questions:
        q = pq.question
        label = dict(zip(pq.options, pq.labels, strict=True))
        if isinstance(q, SingleChoice):
            pick = [c.id for c in q.choices if c.correct != wrong][0]
            lines.append(label[pick])
        elif isinstance(q, MultipleChoice):
            lines.append(" ".join(label[c.id] for c in q.choices if c.correct != wrong))
        elif isinstance(q, OrderingQuestion):
            ids = [i.id for i in q.items]
            lines.append(" ".join(label[i] for i in (reversed(ids) if wrong else ids)))
        elif isinstance(q, NumericQuestion):
            lines.append("1Gi" if wrong and q.kind == "bytes" else "-1" if wrong else str(q.answer))
        elif isinstance(q, BlanksQuestion):  # one line per blank
            for b in q.blanks:
                right = b.accept[0] if b.kind == "token" else str(b.answer)
                lines.append(("nope" if b.kind == "token" else "1") if wrong else right)
        else:
            lines.append("I have no idea at all, to be honest with you." if wrong else q.model_answer)
    return lines


def run(cli, root: Path, *args: str, input: str | None = None):  # noqa: ANN001, ANN201
    return cli("--content", str(root), "quiz", *args, input=input)


# ----------------------------------------------------------------------------- interactive


def test_interactive_all_right(cli, quiz_content: Path, mini: Quiz) -> None:  # noqa: ANN001
    result = run(cli, quiz_content, "mini", "--seed", "7", input="\n".join(typed(mini, 7)) + "\n")
    assert result.exit_code == 0, result
    out = result.stdout
    assert "Quiz mini: Mini quiz" in out and "Seed 7 (repeat this quiz with --seed 7)" in out
    assert "Question 1 of 7" in out and "Question 7 of 7" in out
    assert out.count("✓ Correct") == 6
    assert out.count("✎ Not scored automatically") == 1  # the explanation: self-assessment, no points
    assert "A model answer:" in out and "Rubric (2 point(s), graded by people)" in out
    assert "Why" in out and "Only memory with a backing store" in out  # explanations are shown
    assert "Score: 12 of 12 automatically scored points (100.0%); pass mark 60%: PASSED" in out
    assert "Attempt 1; best so far 12 of 12 (100.0%)." in out
    saved = progress.load_progress("mini")
    assert saved.count == 1 and saved.attempts[0].seed == 7 and saved.attempts[0].mode == "interactive"


def test_interactive_all_wrong_exits_1(cli, quiz_content: Path, mini: Quiz) -> None:  # noqa: ANN001
    result = run(cli, quiz_content, "mini", "--seed", "3", input="\n".join(typed(mini, 3, wrong=True)) + "\n")
    assert result.exit_code == 1, result
    assert "Score: 0 of 12 automatically scored points (0.0%); pass mark 60%: NOT PASSED" in result.stdout


def test_interactive_asks_again_on_bad_input(cli, quiz_content: Path, mini: Quiz) -> None:  # noqa: ANN001
    lines = typed(mini, 5)
    lines = ["", "ZZ", *lines]  # empty, then unreadable, before the first real answer
    result = run(cli, quiz_content, "mini", "--seed", "5", input="\n".join(lines) + "\n")
    assert result.exit_code == 0, result
    assert "Type an answer, or - to skip." in result.stdout
    assert "is not one of the letters shown" in result.stdout or "not a number" in result.stdout
    assert "Score: 12 of 12" in result.stdout


def test_interactive_skip_everything(cli, quiz_content: Path) -> None:  # noqa: ANN001
    result = run(cli, quiz_content, "mini", "--seed", "1", input="-\n" * 7)
    assert result.exit_code == 1
    assert result.stdout.count("– Skipped") == 7
    assert "Score: 0 of 12" in result.stdout


def test_interactive_partial_credit_is_shown(cli, quiz_content: Path, mini: Quiz) -> None:  # noqa: ANN001
    pres = present(mini, 2)
    lines = []
    for pq in pres.questions:
        if pq.question.id == "m1":  # tick one right and one wrong: 3 * (1/2 - 1/3) = 1/2
            label = dict(zip(pq.options, pq.labels, strict=True))
            lines.append(f"{label['a']} {label['b']}")
        else:
            lines.append("-")
    result = run(cli, quiz_content, "mini", "--seed", "2", "--no-save", input="\n".join(lines) + "\n")
    assert "◐ Partly right (0.5 of 3)" in result.stdout
    assert "Score: 0.5 of 12" in result.stdout
    assert not progress.progress_file("mini").exists()  # --no-save


def test_interactive_end_of_input_aborts(cli, quiz_content: Path) -> None:  # noqa: ANN001
    result = run(cli, quiz_content, "mini", "--seed", "1", input="-\n")
    assert result.exit_code == 130
    assert "Aborted." in result.stderr
    assert not progress.progress_file("mini").exists()


def test_the_real_quiz_runs_interactively(cli, quiz_content: Path, quiz53: Quiz) -> None:  # noqa: ANN001
    result = run(cli, quiz_content, "5.3", "--seed", "99", input="\n".join(typed(quiz53, 99)) + "\n")
    assert result.exit_code == 0, result
    assert "Score: 67 of 67" in result.stdout
    assert "free -m" in result.stdout  # Markdown code blocks are rendered


def test_interactive_json_keeps_stdout_clean(cli, quiz_content: Path, mini: Quiz) -> None:  # noqa: ANN001
    result = run(cli, quiz_content, "mini", "--seed", "8", "--json", input="\n".join(typed(mini, 8)) + "\n")
    assert result.exit_code == 0, result
    data = json.loads(result.stdout)
    assert data["points"] == 12 and data["seed"] == 8 and data["attempts"] == 1
    assert "Question 1 of 7" in result.stderr and "Your answer" in result.stderr


# ----------------------------------------------------------------------------- --answers and --json


def test_answers_json(cli, quiz_content: Path, answers_dir: Path) -> None:  # noqa: ANN001
    path = str(answers_dir / "5.3-partial.yaml")
    result = run(cli, quiz_content, "5.3", "--answers", path, "--json")
    assert result.exit_code == 1, result
    data = json.loads(result.stdout)  # nothing but JSON on stdout
    assert data["quiz"] == "5.3" and data["max_points"] == 67 and data["manual_points"] == 15
    assert data["points"] == round(466 / 15, 4) and data["passed"] is False and data["pass_mark"] == 0.7
    per = {q["id"]: q for q in data["questions"]}
    assert per["qos-kill-order"]["points"] == 2.4 and per["free-columns"]["points"] == 1.3333
    assert per["java-pod-explain"]["answered"] is False
    explain = per["alert-3am-explain"]
    assert explain | {"points": 0, "max_points": 0, "manual_points": 3, "graded_by": "people"} == explain
    assert "Not scored automatically" in explain["feedback"] and "A model answer:" in explain["feedback"]
    assert data["attempts"] == 1 and data["best_score"] == data["score"] and data["seed"] is None
    again = json.loads(run(cli, quiz_content, "5.3", "--answers", path, "--json").stdout)
    assert again["attempts"] == 2


def test_answers_all_correct_passes(cli, quiz_content: Path, answers_dir: Path) -> None:  # noqa: ANN001
    result = run(cli, quiz_content, "5.3", "--answers", str(answers_dir / "5.3-all-correct.yaml"))
    assert result.exit_code == 0, result
    assert "Score: 67 of 67 automatically scored points (100.0%); pass mark 70%: PASSED" in result.stdout
    assert result.stdout.count("A model answer:") == 5  # every explanation next to its model answer
    assert progress.load_progress("5.3").attempts[0].mode == "answers"


def test_answers_keyword_stuffed(cli, quiz_content: Path, answers_dir: Path) -> None:  # noqa: ANN001
    result = run(cli, quiz_content, "5.3", "--answers", str(answers_dir / "5.3-keyword-stuffed.yaml"), "--json")
    data = json.loads(result.stdout)
    assert data["points"] == 67
    assert [q["points"] for q in data["questions"] if q["type"] == "explain"] == [0] * 5


def test_malformed_answers_exit_2_without_traceback(cli, quiz_content: Path, answers_dir: Path) -> None:  # noqa: ANN001
    path = answers_dir / "malformed-unknown-question.yaml"
    result = run(cli, quiz_content, "5.3", "--answers", str(path), "--json")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert f"error: {path}:4:14: answers.alert-3pm: quiz 5.3 has no question 'alert-3pm'" in result.stderr
    assert "hint: did you mean 'alert-3am'?" in result.stderr
    assert "Traceback" not in result.stderr


def test_several_problems_are_listed(cli, quiz_content: Path, answers_dir: Path) -> None:  # noqa: ANN001
    path = answers_dir / "malformed-several.yaml"
    result = run(cli, quiz_content, "5.3", "--answers", str(path))
    assert result.exit_code == 2
    assert result.stderr.count(f"{path}:") == 8
    assert "answers.qos-adj-burstable (number): not a number: 'lots'" in result.stderr
    assert "fix: " in result.stderr


def test_answers_for_the_mini_quiz(cli, quiz_content: Path, answers_dir: Path) -> None:  # noqa: ANN001
    result = run(cli, quiz_content, "mini", "--answers", str(answers_dir / "mini-partial.yaml"), "--json")
    assert json.loads(result.stdout)["points"] == 6.5 and result.exit_code == 1


# ----------------------------------------------------------------------------- --template


def test_template_to_stdout(cli, quiz_content: Path) -> None:  # noqa: ANN001
    result = run(cli, quiz_content, "5.3", "--template")
    assert result.exit_code == 0
    data = yaml.safe_load(result.stdout)
    assert data["quiz"] == "5.3" and len(data["answers"]) == 42


def test_template_to_a_file_and_score_it(cli, quiz_content: Path, tmp_path: Path) -> None:  # noqa: ANN001
    out = tmp_path / "answers.yaml"
    result = run(cli, quiz_content, "mini", "--template", "-o", str(out), "--seed", "4")
    assert result.exit_code == 0 and out.is_file()
    assert f"Wrote {out}" in result.stderr
    refused = run(cli, quiz_content, "mini", "--template", "-o", str(out))
    assert refused.exit_code == 2 and "already exists" in refused.stderr
    assert run(cli, quiz_content, "mini", "--template", "-o", str(out), "--force").exit_code == 0
    scored = run(cli, quiz_content, "mini", "--answers", str(out), "--json")
    assert scored.exit_code == 1 and json.loads(scored.stdout)["answered"] == 0


# ----------------------------------------------------------------------------- usage errors


def test_usage_errors(cli, quiz_content: Path, answers_dir: Path, tmp_path: Path) -> None:  # noqa: ANN001
    answers = str(answers_dir / "mini-partial.yaml")
    cases = [
        (("mini", "--template", "--answers", answers), "do not go together"),
        (("mini", "-o", str(tmp_path / "x.yaml")), "only goes with --template"),
        (("mini", "--export-manual", "gradescope", str(tmp_path / "r.json")), "go with --answers"),
        (("mini", "--answers", answers, "--export-manual", "moodle", "x"), "is not one of"),
        (("nope",), "no quiz 'nope'"),
        (("mini", "--answers", str(tmp_path / "missing.yaml")), "does not exist"),
        (("mini", "--seed", "many"), "is not a valid integer"),
    ]
    for args, message in cases:
        result = run(cli, quiz_content, *args)
        assert result.exit_code == 2, (args, result)
        assert message in result.stderr, (args, result)
    assert "hint: quizzes here: 5.3, mini" in run(cli, quiz_content, "nope").stderr


def test_help(cli) -> None:  # noqa: ANN001
    result = cli("quiz", "--help")
    assert result.exit_code == 0
    assert "--answers" in result.stdout and "--template" in result.stdout and "--seed" in result.stdout
