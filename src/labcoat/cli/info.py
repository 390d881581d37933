"""`lab list`, `lab status`, `lab show`: what there is and where you are."""

from __future__ import annotations

from typing import Any

import click

from labcoat.app import App


def _running_labs(app: App) -> dict[str, Any]:
    """lab id -> running sandbox of this user, or {} when Docker cannot be asked."""
    from labcoat.errors import EnvironmentProblem
    from labcoat.runner.session import find_lab_sandboxes

    try:
        return {s.lab_id: s for s in find_lab_sandboxes(app.backend) if s.machine.is_running}
    except EnvironmentProblem:
        return {}


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def list_cmd(app: App, as_json: bool) -> None:
    """List the labs found, with their parts and whether a sandbox is running."""
    from labcoat.content.catalog import natural_key
    from labcoat.report.terminal import literal
    from labcoat.runner import progress

    running = _running_labs(app)
    rows = []
    for lab in sorted(app.catalog.labs.values(), key=lambda lab: natural_key(lab.id)):
        done = progress.load(lab.id)["parts"]
        rows.append({
            "id": lab.id,
            "title": lab.title,
            "memory": lab.sandbox.memory,
            "running": lab.id in running,
            "sandbox": running[lab.id].machine.name if lab.id in running else None,
            "parts": [{"id": p.id, "title": p.title, "points": p.points,
                       "passed": bool(done.get(p.id, {}).get("passed"))} for p in lab.parts],
            "quiz": lab.quiz,
        })
    if as_json:
        app.print_json({"content": str(app.catalog.root), "labs": rows})
        return
    from rich.table import Table

    # Every cell is a Text: a title like "[/]" is shown as written, never read as markup.
    table = Table(title=literal(f"Labs in {app.catalog.root}"), title_justify="left")
    for col in ("lab", "title", "parts", "sandbox"):
        table.add_column(col)
    for row in rows:
        parts = "\n".join(f"{'✓' if p['passed'] else '·'} {p['id']}: {p['title']}" for p in row["parts"])
        table.add_row(literal(row["id"]), literal(row["title"]), literal(parts), literal(row["sandbox"] or "not running"))
    app.console.print(table)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def status(app: App, as_json: bool) -> None:
    """Show the running sandbox: its lab, memory limit, cgroup version and the parts you passed."""
    from labcoat.runner import progress
    from labcoat.runner.session import current_session

    session = current_session(app.backend)
    sandbox = session.main
    lab = app.catalog.lab(sandbox.lab_id)
    limits = sandbox_limits(app, sandbox)
    if limits.get("disk"):
        limits["disk"]["layers"] = disk_layers(app, session)
    done = progress.load(lab.id)["parts"]
    data = {
        "lab": lab.id,
        "title": lab.title,
        "sandbox": sandbox.machine.name,
        "id": sandbox.machine.id,
        "backend": app.backend.name,
        "seed": sandbox.seed,
        **limits,
        "parts": [{"id": p.id, "title": p.title, "passed": bool(done.get(p.id, {}).get("passed")),
                   "first_passed": done.get(p.id, {}).get("first_passed"),
                   "sandbox": session.for_part(p.id).machine.name} for p in lab.parts],
    }
    if as_json:
        app.print_json(data)
        return
    from labcoat.report.terminal import literal, plain
    from labcoat.units import human

    c = app.console
    c.print(f"[bold]lab {plain(lab.id)}[/]: {plain(lab.title)}")
    c.print(f"  sandbox      {plain(data['sandbox'])} ({app.backend.name})")
    mem = data.get("memory_limit")
    swap = data.get("memory_swap_limit")
    c.print(f"  memory limit {human(mem) if mem else 'none'} (memory+swap {human(swap) if swap else 'none'})")
    c.print(f"  cgroup       v{data.get('cgroup_version', '?')}")
    disk = data.get("disk")
    if disk:
        scratch = ", ".join(f"{path} {human(size) if size else '?'}" for path, size in disk["tmpfs"].items())
        c.print(f"  disk         {'read-only root' if disk['read_only_root'] else 'files at most ' + (human(disk['per_file']) if disk['per_file'] else 'unlimited')}"
                f"; in memory (tmpfs): {scratch or 'none'}")
        for line in disk_lines(disk):
            c.print(literal(f"  {line}", "yellow" if line.startswith("FULL") else ""))
        c.print(f"  cpu / io     {data.get('cpus') or 'no'} CPU limit, cpu shares {data.get('cpu_shares') or 1024}, "
                f"io weight {data.get('io_weight') or 'none (not supported here)'}")
    for p in data["parts"]:
        own = f"  (own sandbox: {plain(p['sandbox'])})" if p["sandbox"] != data["sandbox"] else ""
        c.print(f"  {'[green]✓[/]' if p['passed'] else '·'} {plain(p['id'])}: {plain(p['title'])}{own}")


def disk_layers(app: App, session: Any) -> dict[str, Any]:
    """Each sandbox's writable layer against its disk limit, and what bounds it (JSON-ready)."""
    from labcoat.runner import diskwatch

    watched = getattr(app.backend, "watches_layers", False) and diskwatch.enabled()
    out = {}
    for sb in session.all:
        entry = diskwatch.disk_of(sb.machine.id)
        out[sb.part_id or "main"] = {
            "sandbox": sb.machine.name,
            "used": entry.get("used") if entry else None, "limit": entry.get("limit") if entry else None,
            "full": bool(entry and entry.get("full")),
            "bound": "disk watcher" if entry else ("disk watcher (not running now)" if watched else "none"),
        }
    return out


def disk_lines(disk: dict[str, Any]) -> list[str]:
    """`lab status`'s words on the sandboxes' disk: used of the limit, and what bounds it."""
    from labcoat.grading.capacity import mib
    from labcoat.runner import diskwatch

    if disk.get("quota"):
        return [f"whole disk at most {disk['quota']} per sandbox (the engine's quota on the writable layer)"]
    layers = disk.get("layers") or {}
    measured = {name: layer for name, layer in layers.items() if layer["used"] is not None}
    if not measured:
        bound = next(iter(layers.values()), {}).get("bound", "none")
        return [f"whole disk: not bounded now ({bound}); `lab check` or `lab status` starts the watcher"
                if bound != "none" else "whole disk: not bounded on this backend (only each file)"]
    limits = {layer["limit"] for layer in measured.values()}
    each = f"{mib(limits.pop())} each" if len(limits) == 1 else "see --json"
    out = ["written      " + ", ".join(f"{name} {mib(layer['used'])}" for name, layer in measured.items())
           + f" (limit {each}, kept by the disk watcher)"]
    out += ["FULL: " + diskwatch.full_message(layer["sandbox"], layer) for layer in measured.values() if layer["full"]]
    return out


def sandbox_limits(app: App, sandbox: Any) -> dict[str, Any]:
    """Memory limits as the engine set them, and the host's cgroup version."""
    return app.backend.limits(sandbox.machine)


@click.command()
@click.argument("target", required=False)
@click.option("--lab", "lab_id", default=None, help="Lab to show from (default: the running one).")
@click.pass_obj
def show(app: App, target: str | None, lab_id: str | None) -> None:
    """Show TARGET's instructions: a part id (part2), `intro`, or nothing for the list of parts."""
    from labcoat.cli.sandbox import render_markdown
    from labcoat.runner.session import part_of

    if lab_id is None:
        from labcoat.runner.session import current_session

        lab_id = current_session(app.backend).lab_id
    lab = app.catalog.lab(lab_id)
    if target in (None, "intro"):
        render_markdown(app, app.catalog.lab_file(lab.id, lab.intro))
        if target is None:
            from labcoat.report.terminal import literal

            app.console.print(literal("\nParts: " + ", ".join(f"{p.id} ({p.title})" for p in lab.parts)))
        return
    part = part_of(lab, target)
    render_markdown(app, app.catalog.lab_file(lab.id, part.instructions))
