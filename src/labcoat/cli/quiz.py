"""`lab quiz ID`: take a quiz in the terminal, score an answers file, or write a template."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from labcoat.errors import UsageProblem

if TYPE_CHECKING:
    from labcoat.app import App
    from labcoat.content.quiz import Quiz
    from labcoat.quiz.engine import QuizResult


@click.command(name="quiz")
@click.argument("quiz_id", metavar="QUIZ")
@click.option(
    "--answers",
    "answers_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Score this answers file instead of asking (for CI and instructors).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the result as JSON on stdout (an interactive quiz then talks on stderr)."
)
@click.option("--template", is_flag=True, help="Write an answers file to fill in, then stop.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --template: write to this file instead of stdout.",
)
@click.option(
    "--export-manual",
    nargs=2,
    type=(click.Choice(["gradescope", "prairielearn"]), click.Path(dir_okay=False, path_type=Path)),
    metavar="FORMAT OUT",
    help="With --answers: also write the explanations (never auto-scored) with their model answers and rubrics "
    "for manual grading: gradescope (results.json) or prairielearn (manual-grading CSV).",
)
@click.option("--student", help="With --export-manual: the student id written in the export (default: the file name).")
@click.option("--force", is_flag=True, help="With --template -o or --export-manual: overwrite an existing file.")
@click.option("--seed", type=int, help="Shuffle questions and choices reproducibly (default: a new seed).")
@click.option("--no-save", is_flag=True, help="Do not record this attempt in your quiz history.")
@click.pass_obj
def quiz(
    app: App,
    quiz_id: str,
    answers_file: Path | None,
    as_json: bool,
    template: bool,
    output: Path | None,
    export_manual: tuple[str, Path] | None,
    student: str | None,
    force: bool,
    seed: int | None,
    no_save: bool,
) -> None:
    """Take quiz QUIZ (e.g. 5.3): one question at a time, with feedback after each.

    \b
    Examples:
      lab quiz 5.3                            take it here, interactively
      lab quiz 5.3 --template -o answers.yaml  write a file to fill in
      lab quiz 5.3 --answers answers.yaml      score a filled-in file
      lab quiz 5.3 --answers answers.yaml --json
      lab quiz 5.3 --answers answers.yaml --export-manual gradescope results.json

    Every question is scored exactly, except explanations: those are never scored by labcoat.
    You see a model answer and a rubric to compare with, and instructors grade them by hand
    (--export-manual). The score and the pass mark count only the automatically scored points.

    Exits 0 when the score reaches the quiz's pass mark, 1 when it does not, 2 for a
    usage error (including a malformed answers file). Scoring rules: docs/quiz.md.
    """
    ctx = click.get_current_context()
    if template and answers_file:
        raise UsageProblem(
            "--template and --answers do not go together", hint="write the template first, fill it in, then score it"
        )
    if output and not template:
        raise UsageProblem("-o/--output only goes with --template")
    if force and not (template or export_manual):
        raise UsageProblem("--force only goes with --template -o or --export-manual")
    if (export_manual or student) and not answers_file:
        raise UsageProblem("--export-manual and --student go with --answers", hint="score a file: --answers FILE")
    if export_manual and export_manual[1].exists() and not force:
        raise UsageProblem(f"{export_manual[1]} already exists; not overwriting it", hint="pass --force to overwrite it")
    the_quiz = app.catalog.quiz(quiz_id)

    if template:
        _write_template(app, the_quiz, seed, output, force)
        return

    if answers_file:
        from labcoat.quiz.answers import load_answers
        from labcoat.quiz.engine import score_quiz

        answers = load_answers(answers_file, the_quiz)
        result = score_quiz(the_quiz, answers)
        mode, used_seed = "answers", None
        if export_manual:
            _export_manual(app, the_quiz, result, export_manual, student or answers_file.stem)
    else:
        from labcoat.quiz.interactive import click_ask, run_interactive

        used_seed = seed if seed is not None else _new_seed()
        if as_json:  # the quiz talks on stderr so that stdout holds only the JSON
            result = run_interactive(the_quiz, used_seed, app.err_console, ask=lambda t: click_ask(t, err=True))
        else:
            result = run_interactive(the_quiz, used_seed, app.console)
        mode = "interactive"

    progress = None
    if not no_save:
        from labcoat.quiz.progress import record_attempt

        try:
            progress = record_attempt(result, mode, used_seed)
        except OSError as exc:
            app.err_console.print(f"[yellow]warning:[/] could not save this attempt: {exc}")
        else:
            if progress.warning:
                app.err_console.print(f"[yellow]warning:[/] {progress.warning}")

    if as_json:
        data = result.to_dict()
        data["seed"] = used_seed
        if progress is not None and progress.best is not None:
            data["attempts"] = progress.count
            data["best_score"] = progress.best.score
        app.print_json(data)
    else:
        if mode == "answers":
            from labcoat.quiz.interactive import show_self_assessment, show_summary

            show_self_assessment(app.console, the_quiz, result)
            show_summary(app.console, the_quiz, result)
        if progress is not None and progress.best is not None:
            best = progress.best
            app.console.print(
                f"[dim]Attempt {progress.count}; best so far {best.points:g} of {best.max_points} "
                f"({best.score * 100:.1f}%).[/]"
            )
    ctx.exit(0 if result.passed else 1)


def _export_manual(app: App, the_quiz: Quiz, result: QuizResult, export: tuple[str, Path], student: str) -> None:
    from labcoat.grading.submission import safe_name
    from labcoat.quiz.manual import export as render

    fmt, out = export
    text = render(fmt, the_quiz, result, safe_name(student))
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageProblem(f"cannot write {out}: {exc.strerror}") from None
    app.err_console.print(f"Wrote {out}: {the_quiz.manual_points} points of explanations to grade by hand ({fmt}).")


def _new_seed() -> int:
    import secrets

    return secrets.randbelow(1_000_000)


def _write_template(app: App, the_quiz: Quiz, seed: int | None, output: Path | None, force: bool) -> None:
    from labcoat.quiz.answers import template

    text = template(the_quiz, seed if seed is not None else 0)
    if output is None:
        click.echo(text, nl=False)
        return
    if output.exists() and not force:
        raise UsageProblem(
            f"{output} already exists; not overwriting your answers",
            hint="pass --force to overwrite it, or choose another file with -o",
        )
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageProblem(f"cannot write {output}: {exc.strerror}") from None
    app.err_console.print(f"Wrote {output}; fill it in, then: lab quiz {the_quiz.id} --answers {output}")
