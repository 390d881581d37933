"""Check results in the terminal: ✓/✗ per task, expected vs found, and a hint."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from labcoat.report.terminal import plain as escape  # markup escaped and control characters made visible

MARKS = {"passed": "[green]✓[/]", "failed": "[red]✗[/]", "skipped": "[yellow]-[/]", "error": "[magenta]![/]"}


def _pts(x: float) -> str:
    return f"{x:g}"


def print_parts(console: Console, parts: list[Any], reveal: bool = False) -> None:
    """One block per part, one line per check; details only for what did not pass.

    The live figure a check compared with (its `truth`) is printed only with `reveal`.
    """
    for part in parts:
        colour = {"passed": "green", "failed": "red", "skipped": "yellow", "error": "magenta"}[part.status]
        console.print(f"[bold]{part.part}[/] {escape(part.title)}  [{colour}]{part.status}[/]  "
                      f"{_pts(part.points)}/{_pts(part.max_points)} points")
        if part.skipped_reason:
            console.print(f"    [yellow]skipped:[/] {escape(part.skipped_reason)}")
        for c in part.checks:
            if c.check == "(part)":
                continue
            console.print(f"  {MARKS[c.status]} {escape(c.title)}")
            if c.status == "failed":
                if c.expected is not None:
                    console.print(f"      expected: {escape(c.expected)}")
                if c.found is not None:
                    console.print(f"      found:    {escape(c.found)}")
                if c.hint:
                    console.print(f"      [cyan]hint:[/]     {escape(c.hint)}")
                if reveal and getattr(c, "truth", None) is not None:
                    console.print(f"      [magenta]truth:[/]    {escape(c.truth)}")
            elif c.status == "skipped" and c.message:
                console.print(f"      skipped: {escape(c.message)}")
            elif c.status == "error":
                console.print(f"      [magenta]could not check (not your fault):[/] {escape(c.message or '')}")


def summary_line(parts: list[Any]) -> str:
    passed = sum(1 for p in parts if p.status == "passed")
    points = sum(p.points for p in parts)
    total = sum(p.max_points for p in parts)
    return f"{passed}/{len(parts)} part(s) passed, {_pts(points)}/{_pts(total)} points"
