"""The quiz in a terminal: one question at a time, feedback and explanation after each.

Rendering uses rich (Markdown for prompts, choices and explanations); input goes through
an `ask` callable, `click.prompt` by default, so click's CliRunner can feed it in tests.
Scoring is the pure engine's; this module only shows and asks.
"""

from __future__ import annotations

import click
from rich.console import Console
from rich.markdown import Markdown
from rich.panel import Panel
from rich.table import Table

from labcoat.content.quiz import ExplainQuestion, Quiz
from labcoat.quiz.engine import (
    Answer,
    AnswerFormatError,
    PresentedQuestion,
    QuestionResult,
    QuizResult,
    fmt,
    parse_typed,
    present,
    score_answer,
    self_assessment,
    to_fraction,
)
from labcoat.quiz.types import SKIP, TYPE_NAMES, Ask, question_type

__all__ = ["SKIP", "Ask", "ask_answer", "click_ask", "instructions", "run_interactive", "show_question"]


def click_ask(text: str, err: bool = False) -> str:
    """Read one line with click (EOF or Ctrl-C raise click.Abort); `err` prompts on stderr."""
    return str(click.prompt(text, default="", show_default=False, prompt_suffix="> ", err=err))


def instructions(pq: PresentedQuestion) -> str:
    """What to type for this question."""
    text = question_type(pq.question).instructions(pq)
    return f"{text} Type {SKIP} to skip."


def show_question(console: Console, pq: PresentedQuestion, total: int) -> None:
    q = pq.question
    plural = "s" if q.points != 1 else ""
    console.print()
    console.rule(f"[bold]Question {pq.number} of {total}[/] · {TYPE_NAMES[q.type]} · {q.points} point{plural}")
    console.print(Markdown(q.prompt))
    if pq.options:
        texts = question_type(q).option_texts(q)
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column()
        for label, oid in zip(pq.labels, pq.options, strict=True):
            grid.add_row(f"{label})", Markdown(texts[oid]))
        console.print(grid)
    console.print(f"[dim]{instructions(pq)}[/]")


def ask_answer(console: Console, pq: PresentedQuestion, ask: Ask) -> Answer:
    """Ask until the input can be read; '-' skips (None). A type may ask in parts (a blank at a time)."""
    return question_type(pq.question).ask(console, pq, ask, lambda: _ask_typed(console, pq, ask))


def _ask_typed(console: Console, pq: PresentedQuestion, ask: Ask) -> Answer:
    """One line, asked until it can be read; '-' skips (None)."""
    while True:
        typed = ask("Your answer")
        if typed.strip() == SKIP:
            return None
        if not typed.strip():
            console.print(f"[yellow]Type an answer, or {SKIP} to skip.[/]")
            continue
        try:
            return parse_typed(pq, typed)
        except AnswerFormatError as exc:
            console.print(f"[yellow]{exc}.[/] [dim]{instructions(pq)}[/]")


def show_result(console: Console, pq: PresentedQuestion, result: QuestionResult) -> None:
    if result.manual:
        head = ("[yellow]– Skipped[/]" if not result.answered else "[cyan]✎ Not scored automatically[/]")
        console.print(f"{head} ({result.manual_points} point(s) graded by people)")
        console.print(Markdown(result.feedback if result.answered else _self_assessment(pq)))
        console.print(Panel(Markdown(pq.question.explanation), title="Why", title_align="left", border_style="blue"))
        return
    if not result.answered:
        head = f"[yellow]– Skipped[/] (0 of {result.max_points})"
    elif result.correct:
        head = f"[green]✓ Correct[/] ({fmt(result.points)} of {result.max_points})"
    elif result.points > 0:
        head = f"[yellow]◐ Partly right[/] ({fmt(result.points)} of {result.max_points})"
    else:
        head = f"[red]✗ Not right[/] (0 of {result.max_points})"
    console.print(head)
    if result.answered:
        console.print(Markdown(result.feedback))
    console.print(Panel(Markdown(pq.question.explanation), title="Why", title_align="left", border_style="blue"))


def _self_assessment(pq: PresentedQuestion) -> str:
    assert isinstance(pq.question, ExplainQuestion)
    return self_assessment(pq.question)


def show_self_assessment(console: Console, quiz: Quiz, result: QuizResult) -> None:
    """For a scored file: each explanation next to its model answer and rubric (never scored automatically)."""
    for r in result.results:
        if r.manual:
            console.print()
            console.rule(f"[bold]{r.question_id}[/] · explain · {r.manual_points} point(s) graded by people")
            q = quiz.question(r.question_id)
            console.print(Markdown(r.feedback if r.answered else "Not answered.\n\n" + self_assessment(q)))


def show_summary(console: Console, quiz: Quiz, result: QuizResult) -> None:
    table = Table(title=f"Quiz {quiz.id}: {quiz.title}", title_justify="left")
    table.add_column("Question")
    table.add_column("Type")
    table.add_column("Points", justify="right")
    for r in result.results:
        if r.manual:
            mark = "✎" if r.answered else "–"
            table.add_row(f"{mark} {r.question_id}", TYPE_NAMES[r.type], f"({r.manual_points} manual)")
            continue
        mark = "✓" if r.correct else ("–" if not r.answered else ("◐" if r.points else "✗"))
        table.add_row(f"{mark} {r.question_id}", TYPE_NAMES[r.type], f"{fmt(r.points)} / {r.max_points}")
    console.print()
    console.print(table)
    pct = f"{float(result.score) * 100:.1f}%"
    need = f"{float(result.pass_mark) * 100:g}%"
    verdict = "[green bold]PASSED[/]" if result.passed else "[red bold]NOT PASSED[/]"
    console.print(
        f"Score: [bold]{fmt(result.points)} of {result.max_points}[/] automatically scored points ({pct}); "
        f"pass mark {need}: {verdict}"
    )
    if result.manual_points:
        console.print(
            f"[dim]Explanations ({result.manual_points} points) are not in this score: compare yours with the model "
            "answers above; an instructor grades them by hand.[/]"
        )


def run_interactive(quiz: Quiz, seed: int, console: Console, ask: Ask | None = None) -> QuizResult:
    """Ask every question in the order of `seed`, show feedback after each, return the result."""
    ask = ask or click_ask
    presentation = present(quiz, seed)
    total = len(presentation.questions)
    console.print(f"[bold]Quiz {quiz.id}: {quiz.title}[/]")
    if quiz.description.strip():
        console.print(Markdown(quiz.description))
    console.print(
        f"[dim]{total} questions, {quiz.max_points} points; pass mark {quiz.pass_mark * 100:g}%. "
        f"Seed {seed} (repeat this quiz with --seed {seed}).[/]"
    )
    if quiz.manual_points:
        console.print(f"[dim]Explanations ({quiz.manual_points} more points) are graded by people, not here.[/]")
    scored: dict[str, QuestionResult] = {}
    for pq in presentation.questions:
        show_question(console, pq, total)
        answer = ask_answer(console, pq, ask)
        result = score_answer(pq.question, answer)
        scored[pq.question.id] = result
        show_result(console, pq, result)
    result = QuizResult(
        quiz.id, quiz.title, tuple(scored[q.id] for q in quiz.questions), to_fraction(quiz.pass_mark)
    )
    show_summary(console, quiz, result)
    return result
