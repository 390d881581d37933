"""`lab export killercoda LAB OUT` and `lab import killercoda DIR OUT`."""

from __future__ import annotations

from pathlib import Path

import click

from labcoat.app import App
from labcoat.errors import CHECKS_FAILED, CONTENT_INVALID

FORMATS = click.Choice(["killercoda"])


@click.command()
@click.argument("format_", metavar="FORMAT", type=FORMATS)
@click.argument("lab_id")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--python", "pythons", multiple=True, metavar="X.Y",
              help="Python versions to ship dependency wheels for (repeatable; default 3.11, 3.12, 3.13).")
@click.option("--force", is_flag=True, help="Replace an earlier export in OUT.")
@click.option("--no-image", "no_image", is_flag=True,
              help="Do not ship the Docker image of parts that use the VM's Docker (`docker save` needs Docker "
              "here); the VM's setup then builds it, which needs a registry or Debian's mirror there.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary.")
@click.pass_obj
def export(app: App, format_: str, lab_id: str, out: Path, pythons: tuple[str, ...], force: bool,
           no_image: bool, as_json: bool) -> None:
    """Export LAB_ID as a scenario for FORMAT (only `killercoda`) into the folder OUT.

    \b
    The scenario runs on Killercoda's `ubuntu` VM without network access for labcoat:
    its assets carry labcoat's wheel, its dependencies' wheels, the content and the
    sandbox image's own programs (answer, hog). A background script installs them and
    runs `lab --backend local start LAB_ID`; each part is a step whose verify script
    runs `lab --backend local check PART`. A part that uses the VM's Docker gets labcoat's
    image shipped too (`docker save | gzip` in 8 MiB parts, `docker load`ed by the setup).
    See docs/killercoda.md.
    """
    from labcoat.killercoda.export import DEFAULT_PYTHONS, export_lab, human

    say = (lambda m: None) if as_json else (lambda m: app.err_console.print(f"[dim]{m}[/]"))
    result = export_lab(app.catalog, lab_id, out, pythons=pythons or DEFAULT_PYTHONS, force=force, progress=say,
                        ship_images=not no_image, backend=app.backend if not no_image else None)
    if as_json:
        app.print_json({"out": str(result.out), "lab": result.lab_id, "steps": result.steps,
                        "sizes": result.sizes, "total": result.total, "wheels": result.wheels,
                        "images": [{"image": a.image_id, "tag": a.tag, "parts": [p.name for p in a.parts],
                                    "sha256": a.sha256, "bytes": a.size} for a in result.images],
                        "notes": result.notes})
        return
    app.console.print(f"exported lab {result.lab_id} as a Killercoda scenario in {result.out} "
                      f"({len(result.steps)} steps, {human(result.total)})")
    for what, size in result.sizes.items():
        app.console.print(f"  {what:18} {human(size):>10}")
    for note in result.notes:
        app.console.print(f"  note: {note}", soft_wrap=True)


@click.command(name="import")
@click.argument("format_", metavar="FORMAT", type=FORMATS)
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--id", "lab_id", help="Lab id (default: kc-<folder name>).")
@click.option("--memory", default="512m", show_default=True, help="The sandbox's memory limit.")
@click.option("--network", is_flag=True, help="Give the sandbox a network (for setup scripts that download).")
@click.option("--force", is_flag=True, help="Write over an earlier import in OUT.")
@click.option("--selftest", "run_selftest", is_flag=True,
              help="Then run `lab selftest` on it (Docker) and say, per step, what its verify script proves.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable report.")
@click.pass_obj
def import_cmd(app: App, format_: str, src: Path, out: Path, lab_id: str | None, memory: str, network: bool,
               force: bool, run_selftest: bool, as_json: bool) -> None:
    """Turn the FORMAT (only `killercoda`) scenario in SRC into a lab in the content folder OUT.

    \b
    Every step with a verify script becomes a part (step1, step2, ...) whose check runs
    that script in the sandbox (exit 0 passes); background scripts and assets prepare
    the sandbox; solutions come from a "solution" key, a solution.sh beside verify.sh or
    the text's Solution block. Keys labcoat does not use are listed. Then:
      lab --content OUT validate
      lab --content OUT selftest LAB      (verify fails before, passes after the solution)
      lab --content OUT start LAB
    """
    from labcoat.killercoda.importer import import_scenario, selftest_summary, validate_import

    report = import_scenario(src, out, lab_id=lab_id, memory=memory, network=network, force=force)
    problems = validate_import(out)
    summary: list[str] = []
    selftest_ok = True
    if run_selftest and not problems:
        from labcoat.content.catalog import Catalog
        from labcoat.grading.selftest import run_selftest as selftest

        catalog = Catalog.load(out)
        st = selftest(catalog, app.backend, catalog.lab(report.lab_id),
                      echo=None if as_json else app.err_console.print)
        summary = selftest_summary(st.to_dict()["rows"])
        selftest_ok = st.ok
    if as_json:
        app.print_json({**report.to_dict(), "valid": not problems, "problems": problems,
                        **({"selftest": summary, "selftest_ok": selftest_ok} if run_selftest else {})})
    else:
        from rich.markup import escape

        for line in report.lines():
            app.console.print(escape(line), soft_wrap=True)
        for problem in problems:
            app.console.print(f"[red]invalid:[/] {escape(problem)}", soft_wrap=True)
        if not problems:
            app.console.print(f"valid; try: lab --content {out} selftest {report.lab_id}", soft_wrap=True)
        for line in summary:
            app.console.print(escape(line), soft_wrap=True)
    if problems:
        click.get_current_context().exit(CONTENT_INVALID)
    if not selftest_ok:
        click.get_current_context().exit(CHECKS_FAILED)


@click.group()
def killercoda() -> None:
    """Killercoda tools: `lab killercoda run DIR` plays a scenario as Killercoda would."""


@killercoda.command(name="run")
@click.argument("src", metavar="DIR", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--solutions", is_flag=True,
              help="Prove every step: verify must fail, then the step's solution runs, then verify must pass.")
@click.option("--network", is_flag=True, help="Give the stand-in VM a network (off by default, as in CI).")
@click.option("--setup-timeout", default=600.0, show_default=True, metavar="S",
              help="Seconds to wait for the intro's background (the setup) to finish.")
@click.option("--script-timeout", default=300.0, show_default=True, metavar="S",
              help="Seconds for one foreground script, solution or step background.")
@click.option("--verify-timeout", default=60.0, show_default=True, metavar="S", help="Seconds for one verify run.")
@click.option("--all-steps", is_flag=True,
              help="Go on past a step whose verify does not pass (a learner could not): measure every step.")
@click.option("--keep", is_flag=True, help="Keep the stand-in VM afterwards (for debugging; remove it yourself).")
@click.option("--on-this-machine", "here", is_flag=True,
              help="No stand-in: run the scenario on this machine itself, as root. Only on a disposable VM "
              "(e.g. the cgroup v2 `v2-local` lane): it installs files and leaves processes running.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable report.")
@click.pass_obj
def run_cmd(app: App, src: Path, solutions: bool, network: bool, setup_timeout: float, script_timeout: float,
            verify_timeout: float, all_steps: bool, keep: bool, here: bool, as_json: bool) -> None:
    """Play the Killercoda scenario in DIR the way Killercoda does, in a disposable stand-in VM.

    \b
    The stand-in is a container of images/killercoda-vm (Debian, Python 3, root, 2 GiB,
    no network unless --network), labelled and removed at the end. In it: the assets go
    where index.json says; the intro's background runs hidden while its foreground runs
    in the learner's terminal; the setup is waited for; then each step: its scripts, then
    its verify (Killercoda's Check). A step whose verify fails stops the learner: later
    steps are "not reached". With --solutions each verify must fail before the step's
    solution and pass after it. Prints a table of steps (status, time).
    Exit codes: 0 every step passed (or is follow-along), 1 a step failed or the setup
    failed, 2 bad scenario, 4 Docker or the stand-in VM could not run.
    """
    from rich.markup import escape
    from rich.table import Table

    from labcoat.killercoda.importer import safe_text
    from labcoat.killercoda.simulator import ThisMachine, Timeouts, simulate

    say = (lambda m: None) if as_json else (lambda m: app.err_console.print(f"[dim]{escape(safe_text(m))}[/]"))
    report = simulate(src, solutions=solutions, network=network, keep=keep, progress=say, gating=not all_steps,
                      backend=ThisMachine() if here else None,
                      timeouts=Timeouts(setup=setup_timeout, script=script_timeout, verify=verify_timeout))
    if as_json:
        app.print_json(report.to_dict())
    else:
        for run in report.setup:
            state = (f"exit {run.exit}" if run.exit is not None else f"still running after {run.seconds:.0f} s")
            mark = "[green]✓[/]" if run.ok else "[red]✗[/]"
            app.console.print(f"{mark} setup: {escape(safe_text(run.script))} ({run.where}): {state}", soft_wrap=True)
            if not run.ok and run.output:
                app.console.print(escape(run.output[-800:]), soft_wrap=True)
        table = Table(title=escape(safe_text(report.title)), title_justify="left")
        for column in ("#", "step", "status", "time", "detail"):
            table.add_column(column, overflow="fold")
        colour = {"passed": "green", "follow-along": "cyan", "not reached": "dim"}
        for step in report.steps:
            status = f"[{colour.get(step.status, 'red')}]{step.status}[/]"
            table.add_row(str(step.n), escape(safe_text(step.title)), status,
                          f"{step.seconds:.1f} s" if step.status != "not reached" else "",
                          escape(safe_text(step.detail)[:200]))
        app.console.print(table)
        for note in report.notes:
            app.console.print(f"note: {escape(note)}", soft_wrap=True)
        app.console.print(("[green]every step passed[/]" if report.ok else "[red]the learner cannot finish[/]")
                          + f" ({report.seconds:.0f} s)")
    if not report.ok:
        click.get_current_context().exit(CHECKS_FAILED)
