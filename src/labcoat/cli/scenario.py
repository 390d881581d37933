"""`lab scenarios`, `lab run SCENARIO`, `lab provoke PART`: watch the kernel at work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from labcoat.app import App
from labcoat.errors import CHECKS_FAILED, ENVIRONMENT

# Unobservable expectations count as neither passed nor failed: a run with only those is "passed" (0).
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
                     "memory": sc.sandbox.memory if sc.sandbox else None,
                     "swap": sc.sandbox.swap if sc.sandbox else None, "duration": sc.duration_hint,
                     "requires": list(sc.requires),
                     "runnable_here": not lacking, "why_not": "; ".join(f.detail for f in lacking)})
    if as_json:
        app.print_json(rows)
        return
    shown = [r for r in rows if r["standalone"]]

    def limit_of(r: dict[str, Any]) -> str:
        return (r["memory"] or "") + (f"+{r['swap']} swap" if r["swap"] else "")

    cols = [("scenario", [r["id"] for r in shown]), ("limit", [limit_of(r) for r in shown]),
            ("takes", [r["duration"] for r in shown]),
            ("here", ["yes" if r["runnable_here"] else "skipped*" for r in shown])]
    widths = [max([len(v) for v in values] + [len(name)]) for name, values in cols]
    room = max(20, app.console.width - sum(widths) - 2 * len(widths))

    def line(cells: list[str], title: str) -> str:
        title = title if len(title) <= room else title[: room - 1] + "…"
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + "  " + title

    from rich.markup import escape

    app.console.print(f"[bold]{escape(line([name for name, _ in cols], 'what it shows'))}[/]")
    skipped = []
    for i, r in enumerate(shown):
        text = escape(line([values[i] for _, values in cols], r["title"]))
        app.console.print(text if r["runnable_here"] else f"[yellow]{text}[/]", soft_wrap=True)
        if not r["runnable_here"]:
            skipped.append(f"* {r['id']}: {r['why_not']}")
    for note in skipped:
        app.console.print(f"[yellow]{escape(note)}[/]")
    in_labs = sum(1 for r in rows if not r["standalone"])
    if in_labs:
        app.console.print(f"[dim]{in_labs} more run inside lab parts (`lab provoke PART`, or when a part is prepared).[/]")
    app.console.print("Run one with [bold]lab run SCENARIO[/] (--json for every sample and event, --plot FILE for "
                      "a picture, --predict to guess the OOM victim first).")


def _ask(app: App, to_stderr: bool = False) -> Any:
    """Ask which PID will die (on stderr with --json, so stdout stays JSON)."""
    console = app.err_console if to_stderr else app.console

    def ask(ranked: list[dict[str, Any]]) -> int | None:
        console.print("\n[bold]Pause and predict[/]: which process will the kernel kill?")
        for r in sorted(ranked, key=lambda r: r["pid"]):
            rss = (r["rss_pages"] or 0) * 4 // 1024
            console.print(f"  pid {r['pid']:>6}  {r['comm']:16} rss {rss:>5} MiB  oom_score_adj {r['oom_score_adj']:>5}"
                          f"  /proc/PID/oom_score {r['oom_score']}")
        pids = {r["pid"] for r in ranked}
        while True:
            pid = click.prompt("PID you predict (0 to skip)", type=int, default=0, show_default=False,
                               err=to_stderr)
            if not pid or pid in pids:
                return pid or None
            console.print(f"pid {pid} is not one of the processes listed")

    return ask


def _finish(ctx: click.Context, app: App, record: Any, as_json: bool, plot: Path | None) -> None:
    from labcoat.errors import EnvironmentProblem
    from labcoat.report.live import print_summary

    data = record.to_dict()
    plotted, why_not = False, ""
    if plot is not None and data.get("samples"):
        from labcoat.report.plot import plot_run

        try:
            plot_run(data, plot)
            plotted = True
        except EnvironmentProblem as exc:  # e.g. no matplotlib: the run itself still counts
            why_not = str(exc)
    elif plot is not None:
        why_not = f"the run was {record.status} before anything was sampled"
    if as_json:
        app.print_json(data)
    else:
        print_summary(app.console, data)
        if plotted:
            app.console.print(f"plot written to {plot}")
    if plot is not None and not plotted:
        app.err_console.print(f"[yellow]no plot written:[/] {why_not}")
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
    if predict and not any(step.kind == "predict" and step.args.ask for step in scenario.steps):  # type: ignore[attr-defined]
        from labcoat.errors import UsageProblem

        raise UsageProblem(f"scenario {scenario.id} asks for no prediction",
                           hint="--predict works with scenarios that have a `predict: {ask: true}` step, "
                                "e.g. `lab run oom-victim --predict`")
    ask = _ask(app, to_stderr=as_json) if predict else None
    from labcoat.hostinfo import missing

    if as_json or missing(scenario.requires):  # a skipped run has nothing to show live
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
    from labcoat.runner.attempt import provoke_part
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
        record = provoke_part(app.catalog, sandbox, part)
    else:
        from labcoat.report.live import LiveView

        with LiveView(app.console, scenario.title) as view:
            record = provoke_part(app.catalog, sandbox, part, on_event=view.on_event)
    _finish(ctx, app, record, as_json, plot)
