"""`lab grade --batch`: a class's submissions, each graded by a `lab grade` process of its own, `--jobs` at a time."""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labcoat.errors import InfrastructureFailure, LabError, UsageProblem
from labcoat.grading.limits import Limits
from labcoat.grading.results import ungradable
from labcoat.grading.sandboxes import KIND, grading_backend
from labcoat.grading.submission import safe_name

if TYPE_CHECKING:
    from labcoat.content.catalog import Catalog
    from labcoat.content.models import Lab

Say = Callable[[str], Any]


def batch_folders(folder: Path, out: Path | None = None) -> list[Path]:
    """The submissions of a class: every sub-folder (hidden ones and the output folder aside)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageProblem(f"{folder} is not a folder", hint="--batch takes a folder with one sub-folder per student")
    skip = Path(out).resolve() if out else None
    subs = [d for d in sorted(folder.iterdir()) if d.is_dir() and not d.name.startswith(".")
            and d.resolve() != skip]
    if not subs:
        raise UsageProblem(f"{folder} has no sub-folders", hint="put each student's submission in a folder of its own")
    return subs


def student_names(folders: list[Path]) -> list[str]:
    """A distinct, file-name-safe name per folder."""
    names: list[str] = []
    for folder in folders:
        base = safe_name(folder.name)
        name, n = base, 2
        while name in names:
            name, n = f"{base}-{n}", n + 1
        names.append(name)
    return names


def grade_batch(
    catalog: Catalog,
    lab: Lab,
    folder: Path,
    out: Path,
    *,
    jobs: int = 1,
    part_ids: list[str] | tuple[str, ...] = (),
    quiz: bool = True,
    limits: Limits | None = None,
    say: Say | None = None,
    shard: tuple[int, int] | None = None,
    seed: str | None = None,
) -> list[dict[str, Any]]:
    """Grade every sub-folder of `folder`, `jobs` at a time, each in a `lab grade` process of its own.

    A process per submission: each has its own sandboxes, owner label and time limit, and
    a grader that dies takes only that submission with it (reported as ungradable). Every
    student's reports go to out/STUDENT/ (results.json, junit.xml, summary.md, grader.log).
    Returns the labcoat JSON of every submission, in folder order.
    """
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    from labcoat.grading.capacity import cpu_cap, grading_containers, host_cpus, preflight, shortage
    from labcoat.runner.session import L_OWNER, owner

    limits = limits or Limits()
    say = say or (lambda message: None)
    out = Path(out)
    from labcoat.grading.shard import shard_of, student_seed

    folders = batch_folders(folder, out)
    names = student_names(folders)
    if shard:  # this shard's submissions only: by a hash of the name, not by position
        kept = [(f, n) for f, n in zip(folders, names, strict=True) if shard_of(n, shard[1]) == shard[0]]
        folders, names = [f for f, _ in kept], [n for _, n in kept]
    short = shortage(preflight(lab, jobs=jobs, part_ids=part_ids, pids_limit=limits.pids_limit))
    if short:
        raise InfrastructureFailure(short + "; nothing was graded",
                                    hint="free some, or grade fewer at a time (--jobs)")
    # --jobs submissions, each with its sandboxes (and a host part's runner and learner containers):
    # together never more CPUs than the host has.
    limits = replace(limits, cpus=cpu_cap(host_cpus(), jobs, grading_containers(lab, part_ids), limits.cpus))
    out.mkdir(parents=True, exist_ok=True)
    running: dict[str, subprocess.Popen[bytes]] = {}
    lock = threading.Lock()
    stopping = threading.Event()

    def one(sub: Path, name: str) -> dict[str, Any]:
        dest = out / name
        dest.mkdir(parents=True, exist_ok=True)
        results = dest / "results.json"
        results.unlink(missing_ok=True)
        tag = f"{owner()}-grade-{secrets.token_hex(4)}"
        cmd = [sys.executable, "-m", "labcoat", "--content", str(catalog.root), "--backend", grading_backend().name, "grade",
               lab.id, "--submission", str(sub), "--student", name, "--json", str(results),
               "--junit", str(dest / "junit.xml"), "--markdown", str(dest / "summary.md"), "--quiet",
               "--timeout", f"{limits.script_timeout:g}", "--max-output", str(limits.max_output),
               "--grade-timeout", f"{limits.grade_timeout:g}"]
        cmd += [arg for pid in part_ids for arg in ("--part", pid)]
        cmd += [] if quiz else ["--no-quiz"]
        cmd += ["--pids-limit", str(limits.pids_limit)] if limits.pids_limit else []
        cmd += ["--cpus", f"{limits.cpus:g}"] if limits.cpus else []
        cmd += ["--seed", student_seed(seed, name)] if seed else []
        env = {**os.environ, "LABCOAT_GRADE_OWNER": tag}
        env.pop("GITHUB_STEP_SUMMARY", None)
        error = None
        if stopping.is_set():
            return ungradable(lab, name, sub, "the batch was interrupted before this submission").to_dict()
        say(f"{name}: grading")
        began = time.monotonic()
        with open(dest / "grader.log", "wb") as log:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
            with lock:
                running[name] = proc
            try:
                proc.wait(timeout=limits.grade_timeout + 120)
            except subprocess.TimeoutExpired:
                error = f"the grader's own time limit ({limits.grade_timeout + 120:g} s) ran out"
                _stop(proc)
            finally:
                with lock:
                    running.pop(name, None)
        _sweep(tag, L_OWNER)
        data: dict[str, Any] | None = None
        if error is None:
            with contextlib.suppress(OSError, ValueError):
                import json

                data = json.loads(results.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("kind") != "labcoat.grade":
            tail = (dest / "grader.log").read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
            error = error or f"the grader stopped (exit {proc.returncode})" + (f": {' / '.join(tail)}" if tail else "")
            bad = ungradable(lab, name, sub, error, duration=time.monotonic() - began)
            data = bad.to_dict()
            import json

            results.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        say(f"{name}: " + (f"{data.get('points')}/{data.get('max_points')}" if data.get("gradable") else "ungradable"))
        return data

    pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="labcoat-grade")
    try:
        futures = [pool.submit(one, sub, name) for sub, name in zip(folders, names, strict=True)]
        return [f.result() for f in futures]
    except BaseException:
        # Ctrl-C or SIGTERM: no new submission starts, running graders remove their sandboxes.
        stopping.set()
        with lock:
            procs = list(running.values())
        for proc in procs:
            _stop(proc)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _stop(proc: Any) -> None:
    """SIGTERM (the grader then removes its sandboxes, like Ctrl-C), SIGKILL if it will not end."""
    import subprocess

    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


def _sweep(tag: str, label: str) -> None:
    """Remove whatever a finished (or killed) grader process left with its owner label."""
    try:
        backend = grading_backend()
        for machine in backend.find({label: tag, "labcoat.kind": KIND}):
            with contextlib.suppress(LabError):
                backend.remove(machine)
    except LabError:
        pass
