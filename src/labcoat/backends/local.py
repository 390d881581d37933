"""The "sandbox" is this host: for Killercoda-style VMs where the learner is root already.

There is no container, but there still is a memory limit: `start` creates a memory
cgroup (v2: `/sys/fs/cgroup/labcoat.<name>`; v1: `/sys/fs/cgroup/memory/labcoat.<name>`)
with memory and memory+swap limits equal, and every command `run`/`spawn` starts is
moved into it before it executes, so a hog never runs without a limit. The machine's
labels live in a small JSON file, which `find` reads back.

**A cgroup namespace on v2.** Where the kernel allows it (root, util-linux `unshare`, a
writable cgroup2), each command also gets a cgroup namespace rooted at the machine's cgroup
and a mount namespace with cgroup2 mounted there, as a container has: `/sys/fs/cgroup/memory.max`,
`memory.stat`, `memory.events` and `memory.pressure` read by the learner and by the checks are
the machine's, not the host's, and `/proc/self/cgroup` says `0::/`. `start` proves it once (a
probe must read the machine's own limit through the namespace) and records `cgroupns`; where
the probe fails, commands run in the cgroup without a namespace (the limit still holds).

**Fallback: the current cgroup.** Inside a container the cgroup filesystem is mounted
read-only, so the cgroup cannot be created (EROFS; EACCES/EPERM where it is not ours to
write). Then the machine runs in this process's own memory cgroup, *if that cgroup has a
memory limit* (read from /proc/self/cgroup, /proc/self/mountinfo and its limit file): a
container started with `--memory` qualifies. Without a limit `start` refuses, because a
hog must never run without one. Such a "shared" machine uses the limit it found, not the
one the lab asks for (the record keeps both), every machine started this way shares it,
and `remove` kills only the processes that machine started (each carries
LABCOAT_MACHINE=<name> in its environment); the cgroup itself is left alone.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from labcoat.backends.base import Backend, CommandResult, Machine, MachineSpec
from labcoat.errors import EnvironmentProblem
from labcoat.paths import state_dir

if TYPE_CHECKING:
    from collections.abc import Callable

    from labcoat.content.models import Image

CGROUP_ROOT = Path(os.environ.get("LABCOAT_CGROUP_ROOT", "/sys/fs/cgroup"))
# The wrapper joins the sandbox cgroup, then becomes the command.
_ENTER = 'echo $$ > "$LABCOAT_CGROUP_PROCS" && exec "$@"'
# v2 with a cgroup namespace: join, unshare, mount the namespace's own view of cgroup2, become the command.
# The mount has a source name of its own: with the host's ("cgroup2") mount(8) refuses, saying
# "cgroup2 already mounted on /sys/fs/cgroup", and the kernel refuses the same superblock on
# top of itself (EBUSY): the namespace's copy of the host mount is detached first (seen in the
# v2-local lane; the host's mount is untouched, the mount namespace is private).
_ENTER_NS = (
    'echo $$ > "$LABCOAT_CGROUP_PROCS" && exec unshare --cgroup --mount --propagation private '
    '/bin/sh -c \'umount -l /sys/fs/cgroup 2>/dev/null; mount -t cgroup2 labcoat-cgroupns /sys/fs/cgroup && exec "$@"\' '
    'labcoat "$@"'
)
# A shared machine (the fallback) already runs in its cgroup: nothing to join.
_ENTER_SHARED = 'exec "$@"'
# Every process a machine starts carries its name, so a shared machine can find its own.
MACHINE_ENV = "LABCOAT_MACHINE"
PROC = Path("/proc")
PROC_SELF = PROC / "self"  # where own_memory_cgroup reads cgroup and mountinfo (tests point it elsewhere)
# mkdir errors that mean "not ours to create here" (a container's read-only cgroupfs)
_FALLBACK_ERRNOS = (errno.EROFS, errno.EACCES, errno.EPERM)


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


def own_memory_cgroup(proc_self: Path | None = None) -> tuple[Path, int, int | None] | None:
    """This process's memory cgroup as mounted here: (directory, version, limit in bytes or None).

    The limit is the cgroup's own (v1 memory.limit_in_bytes, else hierarchical_memory_limit
    from memory.stat; v2 the smallest memory.max from it up to the top of the mount).
    None when no memory cgroup can be found at all.
    """
    from labcoat import cgroup

    proc_self = proc_self or PROC_SELF
    try:
        found = cgroup.memory_cgroup_dir((proc_self / "cgroup").read_text(), (proc_self / "mountinfo").read_text())
    except OSError:
        return None
    if found is None:
        return None
    directory = Path(found.path)
    return directory, found.version, _limit_of(directory, found.version)


def _limit_of(directory: Path, version: int) -> int | None:
    from labcoat import cgroup

    def read(path: Path) -> str | None:
        try:
            return path.read_text()
        except OSError:
            return None

    if version == 1:
        text = read(directory / "memory.limit_in_bytes")
        limit = cgroup.parse_limit(text) if text else None
        if limit is None:
            stat = read(directory / "memory.stat") or ""
            for line in stat.splitlines():
                key, _, value = line.partition(" ")
                if key == "hierarchical_memory_limit":
                    limit = cgroup.parse_limit(value)
        return limit
    limits = []
    here = directory
    while True:
        text = read(here / "memory.max")
        if text is None:
            break
        value = cgroup.parse_limit(text)
        if value is not None:
            limits.append(value)
        if here.parent == here or not (here.parent / "memory.max").exists():
            break
        here = here.parent
    return min(limits) if limits else None


class LocalBackend(Backend):
    """Runs commands on this host, inside a memory cgroup the backend creates."""

    name: ClassVar[str] = "local"
    is_container: ClassVar[bool] = False

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
        except OSError as exc:
            if exc.errno not in _FALLBACK_ERRNOS:
                self.remove(self._machine(record))
                raise EnvironmentProblem(f"could not set up the cgroup {cg}: {exc.strerror}") from None
            return self._start_shared(record, spec, cg, exc)
        try:
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
        if version == 2 and CGROUP_ROOT == REAL_CGROUP_ROOT:  # (a fake root in tests has no namespace to show)
            works, why = _namespace_works(cg, spec.memory)
            record.update({"cgroupns": True} if works else {"cgroupns_unavailable": why})
            (self.registry / f"{name}.json").write_text(json.dumps(record))
        return self._machine(record)

    def _start_shared(self, record: dict, spec: MachineSpec, wanted: Path, exc: OSError) -> Machine:
        """The fallback: run in this process's own memory cgroup, which must have a limit."""
        own = own_memory_cgroup()
        if own is None or own[2] is None:
            (self.registry / f"{record['id']}.json").unlink(missing_ok=True)
            where = f"its cgroup {own[0]}" if own else "no memory cgroup found for this process"
            raise EnvironmentProblem(
                f"could not create the cgroup {wanted} ({exc.strerror}), and this process's own memory cgroup "
                f"has no limit ({where}): refusing to run a lab without a memory limit",
                hint="run as root on a machine whose cgroup filesystem is writable, or inside a container "
                "started with a memory limit (docker run --memory=2g --memory-swap=2g ...)",
            ) from None
        directory, version, limit = own
        record.update({"cgroup": str(directory), "version": version, "shared": True, "limit": limit,
                       "wanted_limit": spec.memory, "fallback_reason": f"{wanted}: {exc.strerror}"})
        (self.registry / f"{record['id']}.json").write_text(json.dumps(record))
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
        if machine.handle.get("shared"):
            _kill_marked(machine.name)
            (self.registry / f"{machine.id}.json").unlink(missing_ok=True)
            return
        cg = Path(machine.handle["cgroup"])
        procs = cg / "cgroup.procs"
        for _ in range(50):
            pids = procs.read_text().split() if procs.exists() else []
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            time.sleep(0.05)
        if cg.exists():
            try:
                cg.rmdir()
            except OSError as exc:
                raise EnvironmentProblem(f"could not remove cgroup {cg}: {exc.strerror}") from None
        (self.registry / f"{machine.id}.json").unlink(missing_ok=True)

    def host_pid(self, machine: Machine) -> int | None:
        return None

    def cgroup_location(self, machine: Machine) -> tuple[Path, Path | None]:
        directory = Path(machine.handle["cgroup"])
        psi = directory / "memory.pressure"
        return directory, psi if psi.exists() else None

    def ensure_image(self, image_id: str, image: Image | None, image_dir: Path | None,
                     progress: Callable[[str, float | None], None] | None = None) -> str:
        """No image to build: this host must already have the programs the image adds of its own.

        (Debian's tools may differ from host to host; hog and answer exist nowhere else.)
        """
        own = [Path(spec.dest).name for spec in (*image.compile, *image.install)] if image else []
        lacking = [c for c in own if shutil.which(c) is None]
        if lacking:
            raise EnvironmentProblem(
                f"this host lacks commands the lab needs: {', '.join(lacking)}",
                hint="install them (a Killercoda export ships hog and answer as assets), or use --backend docker",
            )
        return ""

    def shell_command(self, machine: Machine, *, user: str | None = None) -> tuple[list[str], dict[str, str]]:
        """A shell in the machine's cgroup (and cgroup namespace), not the host's."""
        return self.command(machine, ["bash", "-l"], user=user), self.command_env(machine)

    def put_bytes(self, machine: Machine, data: bytes, dest: str, mode: int = 0o644) -> None:
        target = Path(dest)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(mode)

    def inspect_named(self, name: str) -> dict[str, Any] | None:
        """A container the learner started on this host's Docker (whose absence is an infrastructure problem)."""
        from labcoat.backends.docker import DockerBackend

        return DockerBackend().inspect_named(name)

    def _env(self, machine: Machine, env: Mapping[str, str] | None) -> dict[str, str]:
        merged = dict(os.environ)
        merged.update(env or {})
        merged[MACHINE_ENV] = machine.name
        if not machine.handle.get("shared"):
            merged["LABCOAT_CGROUP_PROCS"] = str(Path(machine.handle["cgroup"]) / "cgroup.procs")
        return merged

    @staticmethod
    def _wrapper(machine: Machine) -> str:
        if machine.handle.get("shared"):
            return _ENTER_SHARED
        return _ENTER_NS if machine.handle.get("cgroupns") else _ENTER

    def command(self, machine: Machine, argv: Sequence[str], *, user: str | None = None) -> list[str]:
        """The argv that runs `argv` inside the machine (its cgroup, its namespace), as `user`.

        Root joins the cgroup (and unshares) first; `runuser` drops to the user last, since a
        user could neither write cgroup.procs nor create the namespaces.
        """
        inner = ["runuser", "-u", user, "--", *argv] if user else list(argv)
        return ["/bin/sh", "-c", self._wrapper(machine), "labcoat", *inner]

    def command_env(self, machine: Machine, env: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment `command` needs (the cgroup.procs to join, the machine's marker)."""
        return self._env(machine, env)

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
        cmd = self.command(machine, argv, user=user)
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
        cmd = self.command(machine, argv, user=user)
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
REAL_CGROUP_ROOT = Path("/sys/fs/cgroup")


def _namespace_works(cg: Path, limit: int) -> tuple[bool, str]:
    """Whether a command started through _ENTER_NS sees `cg`'s own memory.max as /sys/fs/cgroup's
    (and why not).

    Only for a cgroup under the real cgroup2 mount (a namespace shows the mount of the cgroup
    the process is in). False where unshare is missing or refused (a container without
    CAP_SYS_ADMIN, a user namespace without the mount), where the mount fails, or where what
    the probe reads is not the limit: then commands simply run without the namespace.
    """
    if CGROUP_ROOT != REAL_CGROUP_ROOT:
        return False, f"the cgroup root {CGROUP_ROOT} is not {REAL_CGROUP_ROOT}"
    if shutil.which("unshare") is None:
        return False, "no unshare command (util-linux)"
    probe = ["/bin/sh", "-c", _ENTER_NS, "labcoat", "/bin/sh", "-c",
             'read -r m < /sys/fs/cgroup/memory.max && read -r c < /proc/self/cgroup && echo "$m $c"']
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LABCOAT_CGROUP_PROCS": str(cg / "cgroup.procs")}
    try:
        out = subprocess.run(probe, capture_output=True, timeout=30, env=env, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    seen = out.stdout.decode(errors="replace").split()
    if out.returncode == 0 and seen == [str(limit), "0::/"]:
        return True, ""
    return False, f"exit {out.returncode}, saw {seen}, {out.stderr.decode(errors='replace').strip()[-200:]}"


def _ancestors(proc: Path) -> set[int]:
    """This process and its ancestors (never killed by a shared machine's removal)."""
    pids, pid = set(), os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            stat = (proc / str(pid) / "stat").read_text()
            pid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids | {1}


def marked_pids(name: str, proc: Path | None = None) -> list[int]:
    """PIDs whose environment says LABCOAT_MACHINE=<name>, except this process and its ancestors."""
    proc = proc or PROC
    marker = f"{MACHINE_ENV}={name}".encode()
    spared = _ancestors(proc)
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) in spared:
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            found.append(int(entry.name))
    return sorted(found)


def _kill_marked(name: str) -> None:
    """SIGKILL every process a shared machine started, until none is left (5 s at most)."""
    for _ in range(100):
        pids = marked_pids(name)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def _cut(data: bytes | None, limit: int) -> str:
    return (data or b"")[:limit].decode(errors="replace")
