"""`lab doctor`: is this machine ready for labs, and if not, what to do."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import click

from labcoat.app import App
from labcoat.errors import ENVIRONMENT


def _check(name: str, status: str, detail: str, fix: str = "", **extra: Any) -> dict[str, Any]:
    return {"name": name, "status": status, "detail": detail, "fix": fix, **extra}


def diagnose(app: App) -> list[dict[str, Any]]:
    """Every check, in the order a person would fix them."""
    from labcoat import hostinfo
    from labcoat.errors import EnvironmentProblem

    checks: list[dict[str, Any]] = []
    docker_info: dict[str, Any] = {}
    engine = app.backend.is_container
    if engine:
        try:
            docker_info = app.backend.engine_info() or {}
            checks.append(_check(app.backend.name, "ok", f"engine {docker_info.get('Version')} "
                                 f"(API {docker_info.get('ApiVersion')}), "
                                 f"cgroup driver {docker_info.get('CgroupDriver')}"))
        except EnvironmentProblem as exc:
            checks.append(_check(app.backend.name, "fail", exc.message, exc.hint or ""))
    version = int(docker_info.get("CgroupVersion") or hostinfo.cgroup_version())
    checks.append(_check("cgroup", "ok", f"cgroup v{version}" + (" (hybrid: v1 memory, v2 for PSI)"
                         if version == 1 and os.path.isdir("/sys/fs/cgroup/unified") else ""),
                         version=version))
    feats = hostinfo.features()
    for key, label in (("psi", "psi"), ("swap", "swap"), ("negative_oom_adj", "oom_score_adj")):
        f = feats[key]
        status = "ok" if f.available else "warn"
        checks.append(_check(label, status, f.detail, "" if f.available else f.fix, available=f.available))
    if engine and docker_info:
        checks.append(_image_check(app))
        checks.append(_leftover_check(app))
        checks += _limit_checks(app, docker_info)
    checks += _host_parts_check(app)
    if shutil.which("debootstrap") is None and engine:
        checks.append(_check("debootstrap", "warn", "debootstrap is not installed; images cannot be built offline",
                             "apt-get install debootstrap"))
    return checks


def _host_parts_check(app: App) -> list[dict[str, Any]]:
    """A part that `runs_on: host` has the learner run `docker` here: its client must be installed."""
    parts = [f"{lab.id} {part.id}" for lab in app.catalog.labs.values() for part in lab.parts if part.runs_on == "host"]
    if not parts:
        return []
    if shutil.which("docker"):
        return [_check("client", "ok", f"the docker client is installed (used on this host by {', '.join(parts)})")]
    return [_check("client", "warn", f"no `docker` client on this host; {', '.join(parts)} run it here",
                   "install the client: apt-get install docker.io (Debian/Ubuntu) or docker-ce-cli", parts=parts)]


def _image_check(app: App) -> dict[str, Any]:
    from labcoat.backends.images import recipe_hash

    missing = []
    for image_id in app.catalog.images:
        tag = f"labcoat/{image_id}:{recipe_hash(app.catalog.image_dir(image_id))}"
        if not app.backend.has_image(tag):
            missing.append(tag)
    if missing:
        return _check("images", "warn", f"not built yet: {', '.join(missing)}",
                      "`lab start LAB` builds it (about a minute, offline from Debian's packages)")
    return _check("images", "ok", "all sandbox images are built")


def io_scheduler(path: str, sys_root: Path = Path("/sys")) -> tuple[str, str, list[str]] | None:
    """(device, active scheduler, available ones) of the block device holding `path`, None if unknown."""
    try:
        dev = os.stat(path).st_dev
        block = (sys_root / "dev" / "block" / f"{os.major(dev)}:{os.minor(dev)}").resolve()
        queue = block / "queue" if (block / "queue").exists() else block.parent / "queue"  # a partition
        words = (queue / "scheduler").read_text().split()
    except (OSError, ValueError):
        return None
    active = next((w.strip("[]") for w in words if w.startswith("[")), "?")
    return queue.parent.name, active, [w.strip("[]") for w in words]


def _limit_checks(app: App, docker_info: dict[str, Any]) -> list[dict[str, Any]]:
    """How each lab's sandboxes are bounded here (disk, CPU, I/O), and whether this host can grade now."""
    from labcoat.grading.capacity import cpu_cap, grading_containers, host_cpus, mib, preflight, shortage

    out = []
    supports = app.backend.supports
    io = bool(supports.get("BlkioWeight"))
    quota = bool(supports.get("StorageOptSize"))
    root = docker_info.get("DockerRootDir") or "/var/lib/docker"
    driver = docker_info.get("Driver") or "?"
    backing = dict((k, v) for k, v in (docker_info.get("DriverStatus") or []) if isinstance(k, str)).get(
        "Backing Filesystem", "?")
    if quota:
        whole = f"the engine's quota on the writable layer (--storage-opt size; {driver} on {backing})"
    else:
        whole = (f"no engine quota here ({driver} on {backing}: --storage-opt size needs overlay2 on xfs with "
                 "pquota), so the writable layer is measured from the host: for a learner's sandboxes by the "
                 "disk watcher `lab start` starts (writes stopped past the limit), while grading by the grader "
                 "(the script stopped)")
    sched = io_scheduler(root if os.path.exists(root) else "/")
    where = f"{sched[0]} uses the {sched[1]} I/O scheduler" if sched else "this host's I/O scheduler is unknown"
    io_words = ("io_weight applied (blkio weight)" if io else
                f"io_weight NOT applied: {where} and its cgroups have no blkio weight (it needs bfq on cgroup v1, the "
                "io controller on v2); a busy disk is shared first come, first served")
    for lab in app.catalog.labs.values():
        boxes = [("main", lab.sandbox)] + [(p.id, p.sandbox) for p in lab.parts if p.sandbox]
        alike: dict[str, list[str]] = {}  # the same bounds: the sandboxes named together
        for name, spec in boxes:
            scratch = ", ".join(f"{path} {mib(size)}" for path, size in spec.tmpfs_bytes.items()) or "none"
            disk = ("read-only root" if spec.read_only_root else
                    f"disk {mib(spec.disk_bytes)} (each file: RLIMIT_FSIZE)")
            alike.setdefault(f"{disk}, tmpfs {scratch}", []).append(name)
        words = [f"{', '.join(names)}: {bounds}" for bounds, names in alike.items()]
        containers = grading_containers(lab)
        cpus = cpu_cap(host_cpus(), 1, containers)
        detail = (f"lab {lab.id}: " + "; ".join(words) + f". Whole disk: {whole}. CPU while grading: --cpus "
                  f"{cpus:g} per container ({containers} per submission, with a host part's runner and learner "
                  f"containers; divided again by --jobs), {host_cpus()} CPU(s) here. {io_words}")
        fix = "" if io else (
            "none needed to grade fairly by CPU and disk; for I/O weights switch the disk to bfq (cgroup v1)"
            + (f": bfq is available on {sched[0]}" if sched and "bfq" in sched[2] else "") + ", or use cgroup v2")
        out.append(_check("limits", "ok", detail, fix, lab=lab.id, io_weight=io, disk_bound="quota" if quota
                          else "watched", grading_cpus=cpus, grading_containers=containers,
                          io_scheduler=sched[1] if sched else None))
        needs = preflight(lab, data_root=docker_info.get("DockerRootDir"))
        short = shortage(needs)
        out.append(_check("grading", "warn" if short else "ok",
                          short or ("can grade lab " + lab.id + ": " + "; ".join(n.text() for n in needs)),
                          "free disk, memory or processes (`lab grade` refuses to start with exit 5 until then)"
                          if short else "", lab=lab.id, needs=[n.to_dict() for n in needs]))
    return out


def _leftover_check(app: App) -> dict[str, Any]:
    from labcoat.runner.session import L_MANAGED, Sandbox

    machines = app.backend.find({L_MANAGED: "1"})
    stale = [m for m in machines if not m.is_running or (m.label("labcoat.kind") == "lab"
             and not Sandbox(app.backend, m, m.label("labcoat.lab")).is_ready)]
    names = [m.name for m in machines]
    if stale:
        return _check("leftovers", "warn", f"{len(stale)} unfinished or stopped labcoat container(s): "
                      + ", ".join(m.name for m in stale), "`lab stop --all` removes them", containers=names)
    return _check("leftovers", "ok", f"{len(machines)} labcoat container(s) running, none left over",
                  containers=names)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def doctor(ctx: click.Context, as_json: bool) -> None:
    """Check this machine: Docker reachable? cgroup v1 or v2? PSI on? swap? CAP_SYS_RESOURCE?

    Every problem comes with its fix. Exit code 4 when something needed is missing;
    warnings (no swap, no PSI, no negative oom_score_adj) only make some parts adapt.
    """
    app: App = ctx.obj
    checks = diagnose(app)
    failed = any(c["status"] == "fail" for c in checks)
    if as_json:
        summary = {c["name"]: c for c in checks}
        app.print_json({
            "ok": not failed,
            "cgroup_version": summary["cgroup"]["version"],
            "psi": summary["psi"]["available"],
            "swap": summary["swap"]["available"],
            "negative_oom_score_adj": summary["oom_score_adj"]["available"],
            "checks": checks,
        })
    else:
        marks = {"ok": "[green]✓[/]", "warn": "[yellow]![/]", "fail": "[red]✗[/]"}
        for c in checks:
            app.console.print(f"{marks[c['status']]} [bold]{c['name']}[/]: {c['detail']}")
            if c["fix"]:
                app.console.print(f"    fix: {c['fix']}")
    if failed:
        ctx.exit(ENVIRONMENT)
