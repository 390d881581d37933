"""The "sandbox" is this host: for Killercoda-style VMs where the learner is root already.

There is no container, but there still is a memory limit: `start` creates a memory
cgroup (v2: `/sys/fs/cgroup/labcoat.<name>`; v1: `/sys/fs/cgroup/memory/labcoat.<name>`)
with memory and memory+swap limits equal, and every command `run`/`spawn` starts is
moved into it before it executes, so a hog never runs without a limit. The machine's
labels live in a small JSON file, which `find` reads back.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

from labcoat.backends.base import CommandResult, Machine, MachineSpec
from labcoat.errors import EnvironmentProblem
from labcoat.paths import state_dir

CGROUP_ROOT = Path(os.environ.get("LABCOAT_CGROUP_ROOT", "/sys/fs/cgroup"))
# The wrapper joins the sandbox cgroup, then becomes the command.
_ENTER = 'echo $$ > "$LABCOAT_CGROUP_PROCS" && exec "$@"'


def _cgroup_dir(name: str) -> tuple[Path, int]:
    if (CGROUP_ROOT / "cgroup.controllers").exists() and "memory" in (
        CGROUP_ROOT / "cgroup.controllers"
    ).read_text():
        return CGROUP_ROOT / f"labcoat.{name}", 2
    if (CGROUP_ROOT / "memory").is_dir():
        return CGROUP_ROOT / "memory" / f"labcoat.{name}", 1
    raise EnvironmentProblem(
        "no memory cgroup controller found under /sys/fs/cgroup",
        hint="the local backend needs cgroup v1 or v2 with the memory controller; use --backend docker",
    )


class LocalBackend:
    """Runs commands on this host, inside a memory cgroup the backend creates."""

    name: ClassVar[str] = "local"

    def __init__(self) -> None:
        self.registry = state_dir() / "local-machines"
        self.registry.mkdir(parents=True, exist_ok=True)

    def start(self, spec: MachineSpec, labels: Mapping[str, str]) -> Machine:
        if os.geteuid() != 0:
            raise EnvironmentProblem("the local backend needs root (it creates a memory cgroup)")
        name = spec.name or f"local-{uuid.uuid4().hex[:8]}"
        cg, version = _cgroup_dir(name)
        record = {"id": name, "name": name, "labels": dict(labels), "cgroup": str(cg), "version": version}
        # Registered before the cgroup exists, so an interrupted start is still found and removed.
        (self.registry / f"{name}.json").write_text(json.dumps(record))
        try:
            cg.mkdir(exist_ok=True)
            if version == 2:
                (cg / "memory.max").write_text(str(spec.memory))
                if (cg / "memory.swap.max").exists():
                    (cg / "memory.swap.max").write_text("0")
            else:
                (cg / "memory.limit_in_bytes").write_text(str(spec.memory))
                if (cg / "memory.memsw.limit_in_bytes").exists():
                    (cg / "memory.memsw.limit_in_bytes").write_text(str(spec.memory))
        except OSError as exc:
            self.remove(self._machine(record))
            raise EnvironmentProblem(f"could not set up the cgroup {cg}: {exc.strerror}") from None
        return self._machine(record)

    def find(self, labels: Mapping[str, str], *, include_stopped: bool = True) -> list[Machine]:
        found = []
        for path in sorted(self.registry.glob("*.json")):
            record = json.loads(path.read_text())
            have = record["labels"]
            if all((k in have) if not v else have.get(k) == v for k, v in labels.items()):
                found.append(self._machine(record))
        return found

    def remove(self, machine: Machine) -> None:
        cg = Path(machine.handle["cgroup"])
        procs = cg / "cgroup.procs"
        for _ in range(50):
            pids = procs.read_text().split() if procs.exists() else []
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        if cg.exists():
            try:
                cg.rmdir()
            except OSError as exc:
                raise EnvironmentProblem(f"could not remove cgroup {cg}: {exc.strerror}") from None
        (self.registry / f"{machine.id}.json").unlink(missing_ok=True)

    def host_pid(self, machine: Machine) -> int | None:
        return None

    def _env(self, machine: Machine, env: Mapping[str, str] | None) -> dict[str, str]:
        merged = dict(os.environ)
        merged.update(env or {})
        merged["LABCOAT_CGROUP_PROCS"] = str(Path(machine.handle["cgroup"]) / "cgroup.procs")
        return merged

    def run(
        self,
        machine: Machine,
        argv: Sequence[str],
        *,
        user: str | None = None,
        timeout: float | None = 60,
        env: Mapping[str, str] | None = None,
        max_output: int = 1 << 20,
    ) -> CommandResult:
        cmd = ["/bin/sh", "-c", _ENTER, "labcoat", *argv]
        if user:
            cmd = ["runuser", "-u", user, "--", *cmd]
        began = time.monotonic()
        try:
            proc = subprocess.run(
                cmd, capture_output=True, timeout=timeout, env=self._env(machine, env), check=False
            )
        except subprocess.TimeoutExpired as exc:
            return CommandResult(
                TIMEOUT_STATUS, _cut(exc.stdout, max_output), _cut(exc.stderr, max_output),
                time.monotonic() - began, timed_out=True,
            )
        return CommandResult(
            exit_status=proc.returncode if proc.returncode >= 0 else 128 - proc.returncode,
            stdout=_cut(proc.stdout, max_output),
            stderr=_cut(proc.stderr, max_output),
            duration=time.monotonic() - began,
            truncated=len(proc.stdout) > max_output or len(proc.stderr) > max_output,
        )

    def spawn(self, machine: Machine, argv: Sequence[str], *, user: str | None = None) -> None:
        cmd = ["/bin/sh", "-c", _ENTER, "labcoat", *argv]
        subprocess.Popen(
            cmd, env=self._env(machine, None), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )

    def put(self, machine: Machine, src: Path, dest: str) -> None:
        target = Path(dest) / src.name
        if src.is_dir():
            shutil.copytree(src, target, dirs_exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)

    def _machine(self, record: dict) -> Machine:
        cg = Path(record["cgroup"])
        return Machine(
            id=record["id"], name=record["name"], labels=record["labels"],
            status="running" if cg.exists() else "exited", handle=record,
        )


TIMEOUT_STATUS = 124


def _cut(data: bytes | None, limit: int) -> str:
    return (data or b"")[:limit].decode(errors="replace")
