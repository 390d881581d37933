"""Locating a cgroup: the cgroup version, /proc/PID/cgroup and mountinfo parsed, the host paths of a sandbox."""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# ---------------------------------------------------------------------------------------------
# Locating a cgroup


def detect_version(root: str | os.PathLike[str] = "/sys/fs/cgroup") -> int | None:
    """2 if the memory controller is on cgroup2 at ``root``, 1 if v1 memory is mounted, else None.

    A hybrid host (v1 controllers + cgroup2 at ``root``/unified with no memory controller)
    counts as 1: memory is where the limits are.
    """
    base = Path(root)
    controllers = base / "cgroup.controllers"
    try:
        if "memory" in controllers.read_text().split():
            return 2
    except OSError:
        pass
    if (base / "memory").is_dir():
        return 1
    return None


@dataclass(frozen=True)
class CgroupLine:
    """One line of /proc/PID/cgroup: ``hierarchy-ID:controller-list:path``."""

    hierarchy: int
    controllers: tuple[str, ...]
    path: str


def parse_proc_cgroup(text: str) -> list[CgroupLine]:
    """Parse /proc/PID/cgroup (man 7 cgroups).

    >>> parse_proc_cgroup("4:memory:/docker/abc\\n0::/docker/abc\\n")[0]
    CgroupLine(hierarchy=4, controllers=('memory',), path='/docker/abc')
    """
    lines = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        hid, controllers, path = raw.split(":", 2)  # the path itself may contain ':'
        lines.append(CgroupLine(int(hid), tuple(c for c in controllers.split(",") if c), path))
    return lines


@dataclass(frozen=True)
class Mount:
    """The fields of one /proc/PID/mountinfo line that locating a cgroup needs."""

    mount_id: int
    parent_id: int
    root: str
    mount_point: str
    fstype: str
    source: str
    super_options: tuple[str, ...]


_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape(field_text: str) -> str:
    """Undo mountinfo's octal escapes (``\\040`` for a space; fs/proc_namespace.c mangle)."""
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field_text)


def parse_mountinfo(text: str) -> list[Mount]:
    """Parse /proc/PID/mountinfo (man 5 proc_pid_mountinfo); optional fields end at ``-``."""
    mounts = []
    for raw in text.splitlines():
        parts = raw.split()
        if "-" not in parts or len(parts) < 7:
            continue
        sep = parts.index("-", 6)
        tail = parts[sep + 1:]
        if len(tail) < 2:
            continue
        mounts.append(Mount(
            mount_id=int(parts[0]),
            parent_id=int(parts[1]),
            root=_unescape(parts[3]),
            mount_point=_unescape(parts[4]),
            fstype=tail[0],
            source=_unescape(tail[1]),
            super_options=tuple(tail[2].split(",")) if len(tail) > 2 else (),
        ))
    return mounts


def _join_under_mount(mount: Mount, cgroup_path: str) -> str | None:
    """Where ``cgroup_path`` appears below ``mount``; None when the mount cannot show it.

    A container's own view mounts its cgroup as the root (mountinfo root
    ``/docker/<id>`` with the same path in /proc/self/cgroup), so the mount root is
    stripped first; a path outside the mount root (or with ``..``, which a cgroup
    namespace prints for cgroups outside it) is not reachable through this mount.
    """
    root = mount.root.rstrip("/")
    path = cgroup_path.rstrip("/")
    if root:
        if path != root and not path.startswith(root + "/"):
            return None
        path = path[len(root):]
    if ".." in path.split("/"):
        return None
    return mount.mount_point.rstrip("/") + path if path else mount.mount_point


def _pick(mounts: list[Mount], cgroup_path: str, accept: Callable[[Mount], bool]) -> str | None:
    """First reachable directory among accepted mounts, preferring those under /sys/fs/cgroup."""
    candidates = [m for m in mounts if accept(m)]
    candidates.sort(key=lambda m: not m.mount_point.startswith("/sys/fs/cgroup"))
    for mount in candidates:
        joined = _join_under_mount(mount, cgroup_path)
        if joined is not None:
            return joined
    return None


@dataclass(frozen=True)
class CgroupDir:
    """A memory cgroup directory and the interface version its files follow."""

    version: int
    path: str


def memory_cgroup_dir(proc_cgroup: str, mountinfo: str) -> CgroupDir | None:
    """The memory cgroup of a process from its /proc/PID/cgroup text and a mountinfo text.

    v1: the line whose controller list has ``memory``, under the cgroup mount with the
    ``memory`` super option. v2: the ``0::`` line under the cgroup2 mount. v1 wins when both
    exist, as on hybrid hosts where cgroup2 holds no memory controller.
    """
    lines = parse_proc_cgroup(proc_cgroup)
    mounts = parse_mountinfo(mountinfo)
    for line in lines:
        if "memory" in line.controllers:
            path = _pick(mounts, line.path,
                         lambda m: m.fstype == "cgroup" and "memory" in m.super_options)
            return CgroupDir(1, path) if path else None
    for line in lines:
        if line.hierarchy == 0 and not line.controllers:
            path = _pick(mounts, line.path, lambda m: m.fstype == "cgroup2")
            return CgroupDir(2, path) if path else None
    return None


def cgroup2_dir(proc_cgroup: str, mountinfo: str) -> str | None:
    """The process's cgroup2 directory (hybrid or pure v2), or None without a cgroup2 mount."""
    for line in parse_proc_cgroup(proc_cgroup):
        if line.hierarchy == 0 and not line.controllers:
            return _pick(parse_mountinfo(mountinfo), line.path, lambda m: m.fstype == "cgroup2")
    return None


def _read_proc(pid: int | str, proc: str, mountinfo: str | None) -> tuple[str, str]:
    """The /proc/PID/cgroup text and the mountinfo text (default: proc/self/mountinfo)."""
    proc_cgroup = Path(proc, str(pid), "cgroup").read_text()
    mountinfo_text = Path(mountinfo or os.path.join(proc, "self", "mountinfo")).read_text()
    return proc_cgroup, mountinfo_text


def host_cgroup_dir(pid: int | str, proc: str = "/proc", mountinfo: str | None = None) -> str | None:
    """Host-side memory cgroup directory of ``pid`` (e.g. /sys/fs/cgroup/memory/docker/<id>)."""
    found = memory_cgroup_dir(*_read_proc(pid, proc, mountinfo))
    return found.path if found else None


def host_psi_path(pid: int | str, proc: str = "/proc", mountinfo: str | None = None,
                  must_exist: bool = True) -> str | None:
    """The cgroup2 memory.pressure of ``pid``, also on hybrid hosts; None if absent.

    On a hybrid host runc also places the task in cgroup2 (``0::/docker/<id>``) and PSI is
    accounted on the default hierarchy whatever hierarchy memory is on (kernel/sched/psi.c,
    cgroup_psi), hence /sys/fs/cgroup/unified/docker/<id>/memory.pressure (host side only).
    """
    directory = cgroup2_dir(*_read_proc(pid, proc, mountinfo))
    if directory is None:
        return None
    path = posixpath.join(directory, "memory.pressure")
    if must_exist and not os.path.exists(path):
        return None
    return path
