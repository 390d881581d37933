"""`lab start`, `lab shell`, `lab reset`, `lab stop`, `lab reclaim`: the sandbox's life."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from labcoat.app import App

if TYPE_CHECKING:
    from labcoat.runner.session import Progress


@contextmanager
def progress_display(app: App, title: str) -> Iterator[Progress]:
    """A live spinner/bar on stderr; yields a `progress(message, fraction)` callback."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=app.err_console, transient=True) as bar:
        task = bar.add_task(title, total=1.0)

        def update(message: str, fraction: float | None) -> None:
            bar.update(task, description=f"{title}: {message}", completed=fraction if fraction is not None else None)
            if fraction is None:
                bar.update(task, total=None)
            else:
                bar.update(task, total=1.0, completed=fraction)

        yield update


def render_markdown(app: App, path: os.PathLike[str] | str) -> None:
    """Show a Markdown file in the terminal (rich's renderer is built on markdown-it-py), made safe."""
    from labcoat.report.terminal import print_markdown_file

    print_markdown_file(app.console, path)


@click.command()
@click.argument("lab_id")
@click.option("--fresh", is_flag=True, help="Start a new sandbox even when one is running (your progress is kept).")
@click.option("--quiet", "-q", is_flag=True, help="Do not show the intro.")
@click.pass_obj
def start(app: App, lab_id: str, fresh: bool, quiet: bool) -> None:
    """Start LAB_ID's sandbox (building its image if needed), prepare every part, show the intro.

    \b
    The sandbox is a container with the lab's memory limit (memory+swap set equal),
    no network, and labels that let `lab stop` find it whatever happens.
    Running `lab start` again reuses a ready sandbox; --fresh replaces it.
    Sandboxes stopped by a Docker engine restart are resumed, answers kept.
    """
    from labcoat.runner.session import start_lab

    lab = app.catalog.lab(lab_id)
    with progress_display(app, f"lab {lab.id}") as progress:
        session, is_new = start_lab(app.catalog, app.backend, lab, progress=progress, fresh=fresh)
    verb = "started" if is_new else ("resumed" if session.resumed is not None else "already running")
    app.err_console.print(
        f"[green]✓[/] lab {lab.id} {verb}: sandbox [bold]{session.main.machine.name}[/], "
        f"memory limit {lab.sandbox.memory}"
    )
    if session.restored:
        app.err_console.print("  your sandboxes had been removed outside labcoat: new ones were started with the "
                              "same draw, and your answers were put back (files you made in them are gone)")
    if session.resumed is not None:
        again = ", ".join(session.resumed)
        app.err_console.print("  your stopped sandboxes were started again: your answers and files are kept"
                              + (f"; the services of {again} were started again (same names and sizes, new PIDs:"
                                 " read PIDs again)" if again else ""))
    for part_id, sb in session.parts.items():
        spec = lab.part(part_id).sandbox
        app.err_console.print(f"  {part_id} has a sandbox of its own: {sb.machine.name}, "
                              f"memory limit {spec.memory if spec else '?'} (`lab shell {part_id}`)")
    if not quiet:
        render_markdown(app, app.catalog.lab_file(lab.id, lab.intro))
        app.console.print(
            f"\nNext: [bold]lab show {lab.parts[0].id}[/] to read part 1, [bold]lab shell[/] to work in the sandbox."
        )


@click.command()
@click.argument("part_id", required=False)
@click.option("--user", default=None, help="Run the shell as this user (default: root).")
@click.pass_obj
def shell(app: App, part_id: str | None, user: str | None) -> None:
    """Open an interactive shell inside the sandbox (exit it with Ctrl-D).

    With PART_ID, the shell opens where that part happens: parts that provoke the
    kernel (OOM kills, pressure) have a sandbox of their own.
    """
    from labcoat.runner.session import current_session, part_of

    session = current_session(app.backend)
    if part_id:
        part_of(app.catalog.lab(session.lab_id), part_id)
    sandbox = session.for_part(part_id)
    from labcoat.report.terminal import literal
    from labcoat.runner.diskwatch import full_sandboxes

    for line in full_sandboxes([sandbox.machine]):  # why the last shell ended, why writes fail
        app.err_console.print(literal(f"! {line}", "yellow"))
    argv, env = app.backend.shell_command(sandbox.machine, user=user)
    os.execvpe(argv[0], argv, env)


@click.command()
@click.argument("part_id", required=False)
@click.pass_obj
def reset(app: App, part_id: str | None) -> None:
    """Start over: with no PART_ID a fresh sandbox for the lab, else re-prepare one part.

    Resetting a part forgets its progress and runs its preparation again; resetting the
    lab replaces the sandbox (recorded answers inside it are lost) and forgets progress.
    """
    from labcoat.runner import progress
    from labcoat.runner.session import (
        SandboxesStopped,
        current_session,
        part_of,
        restart_part,
        start_lab,
        stopped_sessions,
    )

    try:
        session = current_session(app.backend)
    except SandboxesStopped:
        if part_id is not None:
            raise
        session = stopped_sessions(app.backend)[0]  # starting over needs no resume first
    lab = app.catalog.lab(session.lab_id)
    if part_id is None:
        with progress_display(app, f"lab {lab.id}") as bar:
            start_lab(app.catalog, app.backend, lab, progress=bar, fresh=True)
        progress.reset(lab.id)
        app.err_console.print(f"[green]✓[/] lab {lab.id} reset: fresh sandboxes, progress cleared")
        return
    part = part_of(lab, part_id)
    sandbox = restart_part(app.catalog, session, lab, part)
    progress.reset(lab.id, part.id)
    where = "a fresh sandbox of its own" if part.sandbox else "prepared again"
    app.err_console.print(f"[green]✓[/] {part.id}: {where} ({sandbox.machine.name})")


@click.command()
@click.option("--all", "everything", is_flag=True,
              help="Also remove this user's scenario, selftest and grading sandboxes (e.g. after a killed grader).")
@click.pass_obj
def stop(app: App, everything: bool) -> None:
    """Remove this user's lab sandbox and everything it started. Progress is kept."""
    from labcoat.runner.session import (
        L_MANAGED,
        L_OWNER,
        Sandbox,
        find_lab_sandboxes,
        owner,
        remove_learner_containers,
        remove_sandboxes,
    )

    names: list[str] = []
    for lab_id in {s.lab_id for s in find_lab_sandboxes(app.backend)}:
        if lab_id in app.catalog.labs:
            names += remove_learner_containers(app.backend, app.catalog.labs[lab_id])
    if everything:
        machines = app.backend.find({L_MANAGED: "1", L_OWNER: owner()})
        # Grading sandboxes have an owner per submission; the grader's own name is on them too.
        machines += [m for m in app.backend.find({L_MANAGED: "1", "labcoat.grader": owner()})
                     if m.id not in {x.id for x in machines}]
        sandboxes = [Sandbox(app.backend, m, m.label("labcoat.lab")) for m in machines]
    else:
        sandboxes = find_lab_sandboxes(app.backend)
    names += remove_sandboxes(app.backend, sandboxes)
    if names:
        app.err_console.print(f"[green]✓[/] removed {', '.join(names)}")
    else:
        app.err_console.print("nothing to stop: no sandbox of yours is running")


@click.command()
@click.argument("part_id", required=False)
@click.pass_obj
def reclaim(app: App, part_id: str | None) -> None:
    """Drop the sandbox's page cache, from the host side.

    \b
    Inside a container `echo 3 > /proc/sys/vm/drop_caches` fails: /proc/sys is
    read-only there, and if it were writable it would drop the cache of the whole
    host. This writes to the sandbox's own cgroup instead (memory.force_empty on
    cgroup v1, memory.reclaim on v2), which only touches the sandbox's pages.
    """
    from labcoat.runner.session import current_sandbox
    from labcoat.runner.steps import reclaim_sandbox
    from labcoat.units import human

    sandbox = current_sandbox(app.backend, part_id)
    result = reclaim_sandbox(app.backend, sandbox.machine)
    before, after = result.get("file_before"), result.get("file_after")
    if before is not None and after is not None:
        app.err_console.print(f"[green]✓[/] page cache of the sandbox: {human(before)} → {human(after)}")
    else:
        app.err_console.print("[green]✓[/] page cache of the sandbox reclaimed")
