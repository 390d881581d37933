"""`lab scenarios`, `lab run SCENARIO`, `lab provoke PART`: watch the kernel at work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from labcoat.app import App
from labcoat.errors import CHECKS_FAILED, ENVIRONMENT

EXIT_FOR = {"passed": 0, "skipped": 0, "failed": CHECKS_FAILED, "error": ENVIRONMENT}


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def scenarios(app: App, as_json: bool) -> None:
    """List the scenarios: standalone ones run with `lab run`, lab ones with `lab provoke PART`."""
    from labcoat.hostinfo import missing

    rows = []
    for sc in sorted(app.catalog.scenarios.values(), key=lambda s: s.id):
        lacking = missing(sc.requires)
        rows.append({"id": sc.id, "title": sc.title, "standalone": sc.sandbox is not None,
                     "memory": sc.sandbox.memory if sc.sandbox else None, "duration": sc.duration_hint,
                     "runnable_here": not lacking, "why_not": "; ".join(f.detail for f in lacking)})
    if as_json:
        app.print_json(rows)
        return
    from rich.table import Table

    table = Table()
    for col in ("scenario", "what it shows", "limit", "takes", "here"):
        table.add_column(col)
    for r in rows:
        if not r["standalone"]:
            continue
        table.add_row(r["id"], r["title"], r["memory"] or "", r["duration"],
                      "yes" if r["runnable_here"] else f"skipped: {r['why_not']}")
    app.console.print(table)
    app.console.print("Run one with [bold]lab run SCENARIO[/] (add --json for every sample, --plot FILE for a picture).")


def _ask(app: App) -> Any:
    def ask(ranked: list[dict[str, Any]]) -> int | None:
        app.console.print("\n[bold]Pause and predict[/]: which process will the kernel kill?")
        for r in sorted(ranked, key=lambda r: r["pid"]):
            rss = (r["rss_pages"] or 0) * 4 // 1024
            app.console.print(f"  pid {r['pid']:>6}  {r['comm']:16} rss {rss:>5} MiB  oom_score_adj {r['oom_score_adj']:>5}"
                              f"  /proc/PID/oom_score {r['oom_score']}")
        pid = click.prompt("PID you predict", type=int, default=0, show_default=False)
        return pid or None

    return ask


def _finish(ctx: click.Context, app: App, record: Any, as_json: bool, plot: Path | None) -> None:
    from labcoat.report.live import print_summary

    data = record.to_dict()
    if plot is not None:
        from labcoat.report.plot import plot_run

        plot_run(data, plot)
    if as_json:
        app.print_json(data)
    else:
        print_summary(app.console, data)
        if plot is not None:
            app.console.print(f"plot written to {plot}")
    code = EXIT_FOR.get(record.status, ENVIRONMENT)
    if code:
        ctx.exit(code)


@click.command()
@click.argument("scenario_id")
@click.option("--json", "as_json", is_flag=True, help="Print every sample and event as JSON (no live view).")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), help="Write a PNG of the samples over time.")
@click.option("--predict", is_flag=True, help="Ask which process will be OOM-killed before provoking it.")
@click.pass_context
def run(ctx: click.Context, scenario_id: str, as_json: bool, plot: Path | None, predict: bool) -> None:
    """Run SCENARIO_ID in a sandbox of its own and watch live what the kernel does.

    \b
    Shows memory use against the limit, page cache, PSI and OOM kills as they happen,
    then a summary with the expectations that held or did not. The sandbox is removed
    at the end, also after Ctrl-C. Exit code 1 when an expectation failed.
    """
    from labcoat.runner.scenario import run_standalone

    app: App = ctx.obj
    scenario = app.catalog.scenario(scenario_id)
    ask = _ask(app) if predict else None
    if as_json:
        record = run_standalone(app.catalog, app.backend, scenario, ask_prediction=ask)
    else:
        from labcoat.report.live import LiveView

        with LiveView(app.console, scenario.title) as view:
            record = run_standalone(app.catalog, app.backend, scenario, on_event=view.on_event,
                                    ask_prediction=_pausing(view, ask))
    _finish(ctx, app, record, as_json, plot)


def _pausing(view: Any, ask: Any) -> Any:
    """Stop the live display while asking (a prompt inside Live is unreadable)."""
    if ask is None:
        return None

    def wrapped(ranked: list[dict[str, Any]]) -> int | None:
        view.live.stop()
        try:
            return ask(ranked)
        finally:
            view.live.start()

    return wrapped


@click.command()
@click.argument("part_id")
@click.option("--json", "as_json", is_flag=True, help="Print every sample and event as JSON (no live view).")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), help="Write a PNG of the samples over time.")
@click.pass_context
def provoke(ctx: click.Context, part_id: str, as_json: bool, plot: Path | None) -> None:
    """Run PART_ID's scenario in that part's sandbox (e.g. provoke the OOM kill you predicted).

    What the runner measures is kept on the host; `lab check PART_ID` compares your
    recorded answers with it.
    """
    from labcoat.errors import UsageProblem
    from labcoat.runner.records import save_record
    from labcoat.runner.scenario import ScenarioRunner
    from labcoat.runner.session import current_session, part_of

    app: App = ctx.obj
    session = current_session(app.backend)
    lab = app.catalog.lab(session.lab_id)
    part = part_of(lab, part_id)
    if not part.provoke:
        raise UsageProblem(f"{part.id} has nothing to provoke", hint="only parts whose instructions say "
                           "`lab provoke` have a scenario")
    scenario = app.catalog.scenario(part.provoke)
    sandbox = session.for_part(part.id)
    if as_json:
        record = ScenarioRunner(scenario, app.backend, sandbox.machine, seed=sandbox.seed).run()
    else:
        from labcoat.report.live import LiveView

        with LiveView(app.console, scenario.title) as view:
            record = ScenarioRunner(scenario, app.backend, sandbox.machine, seed=sandbox.seed,
                                    on_event=view.on_event).run()
    save_record(sandbox.machine.id, scenario.id, record.to_dict())
    _finish(ctx, app, record, as_json, plot)
