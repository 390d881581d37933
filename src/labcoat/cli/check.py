"""`lab check` (the learner's verdict) and `lab selftest` (the lab author's proof)."""

from __future__ import annotations

import click

from labcoat.app import App
from labcoat.errors import CHECKS_FAILED, ENVIRONMENT


@click.command()
@click.argument("part_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable: part, check, status, expected, found, hint, points.")
@click.option("--reveal", is_flag=True,
              help="For instructors: also show the live figure each failed check compared with (the answer). "
                   "A revealed run does not count towards progress.")
@click.pass_context
def check(ctx: click.Context, part_id: str | None, as_json: bool, reveal: bool) -> None:
    """Check your work on PART_ID (e.g. part2), or on every part of the running lab.

    \b
    Each task shows ✓ or ✗; a ✗ says what was expected, what was found, and gives a
    hint. Checks read the live kernel state of your sandbox, so re-run them as you go.
    A ✗ never shows the live figure itself; --reveal does (for instructors), and a
    revealed run is not recorded: its passes do not count towards your progress
    (`lab status`, `lab list`).
    Exit codes: 0 all passed (or skipped because this host cannot show them),
    1 something to fix, 4 the check itself could not run (not your fault).
    """
    from labcoat.checking.run import run_checks
    from labcoat.report.console import print_parts, summary_line
    from labcoat.runner import progress
    from labcoat.runner.session import current_session, part_of

    app: App = ctx.obj
    session = current_session(app.backend)
    lab = app.catalog.lab(session.lab_id)
    parts = [part_of(lab, part_id)] if part_id else list(lab.parts)
    results = run_checks(app.catalog, session, lab, parts)
    sandbox = session.main
    from labcoat.report.terminal import literal
    from labcoat.runner.diskwatch import full_sandboxes

    for line in full_sandboxes([sb.machine for sb in session.all]):  # why writes fail in there
        app.err_console.print(literal(f"! {line}", "yellow"))
    for r in results:
        if r.status in ("passed", "failed") and not reveal:  # a pass seen with the answers shown earns nothing
            progress.record(lab.id, r.part, r.status == "passed")
    if as_json:
        app.print_json({"lab": lab.id, "sandbox": sandbox.machine.name,
                        "passed": all(r.status in ("passed", "skipped") for r in results),
                        "parts": [r.to_dict(reveal) for r in results]})
    else:
        print_parts(app.console, results, reveal=reveal)
        app.console.print(summary_line(results))
        if reveal:
            app.console.print("[dim]--reveal: this run is not recorded in your progress.[/]")
    if any(r.status == "error" for r in results):
        ctx.exit(ENVIRONMENT)
    if any(r.status == "failed" for r in results):
        ctx.exit(CHECKS_FAILED)


@click.command()
@click.argument("lab_id")
@click.option("--part", "part_ids", multiple=True, help="Only these parts (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--keep", is_flag=True, help="Keep the selftest sandbox afterwards (for debugging).")
@click.option("--no-mutations", is_flag=True, help="Skip the generated decoys (faster).")
@click.pass_context
def selftest(ctx: click.Context, lab_id: str, part_ids: tuple[str, ...], as_json: bool, keep: bool,
             no_mutations: bool) -> None:
    """Prove LAB_ID's checks both ways, in a sandbox of its own.

    \b
    For every part: the checks must fail on a freshly prepared sandbox, fail after
    each decoy (a plausible wrong answer), pass after the reference solution, and
    still pass after the solution runs a second time. Then the generated decoys: every
    plausible wrong value the checks declare for an answer (another /proc/meminfo field,
    a unit off by 1000 or 1024, the host's figure, the previous reading, a neighbour in a
    ranking...) replaces the solution's answer in turn, and each must fail. --json lists
    them per check with how many were rejected. Exit 0 only when all hold.
    """
    from labcoat.grading.selftest import run_selftest

    app: App = ctx.obj
    lab = app.catalog.lab(lab_id)
    report = run_selftest(app.catalog, app.backend, lab, part_ids=part_ids, keep=keep,
                          echo=None if as_json else app.err_console.print, mutate=not no_mutations)
    if as_json:
        app.print_json(report.to_dict())
    else:
        from rich.markup import escape

        for row in report.rows:
            mark = "[green]✓[/]" if row.ok else "[red]✗[/]"
            app.console.print(f"{mark} {row.part:8} {row.stage:28} expected {row.expected:6} got {row.got:7} "
                              f"{escape(row.detail)}")
        for family in report.mutations:
            mark = "[green]✓[/]" if family.ok else "[red]✗[/]"
            accepted = [f"{m.name} ({m.value})" for m in family.tried if m.got not in ("fail", "skipped")]
            skipped = sum(1 for m in family.tried if m.got == "skipped")
            app.console.print(f"{mark} {family.part:8} {'generated decoys of ' + family.key:28} "
                              f"{family.rejected}/{len(family.tried)} rejected"
                              + (f" ({skipped} indistinct at check time)" if skipped else "")
                              + (escape(f"; ACCEPTED: {', '.join(accepted)}") if accepted else ""))
        app.console.print("selftest " + ("[green]passed[/]" if report.ok else "[red]FAILED[/]"))
    if not report.ok:
        ctx.exit(CHECKS_FAILED)
