"""Read a sandbox's memory cgroup from the host side (no exec into the sandbox).

The host sees what the sandbox cannot: on a cgroup v1 host the sandbox's own PSI lives
only in the cgroup2 hierarchy (PSI is accounted on the default hierarchy, kernel/sched/psi.c),
and the counters survive as long as the cgroup does. Files are read directly with Python: no subprocess, no docker exec.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from labcoat.backends.base import Backend, Machine


def sandbox_dirs(backend: Backend, machine: Machine) -> tuple[Path, Path | None]:
    """The sandbox's memory cgroup directory and its PSI file (None when the host has none)."""
    return backend.cgroup_location(machine)


def read_dir(directory: Path, psi: Path | None, system_pressure: str | None = None) -> str:
    """The cgroup's files (and its PSI file) in the `=== name` format the snapshot parser reads."""
    from labcoat import cgroup

    version = 2 if (directory / "memory.max").exists() else 1
    return cgroup.read_capture(version, directory, str(psi) if psi else None, system_pressure=system_pressure)


def read_sandbox_cgroup(backend: Backend, machine: Machine, dirs: tuple[Path, Path | None] | None = None) -> Any:
    """A MemorySnapshot of the sandbox, read from the host."""
    from labcoat import cgroup

    directory, psi = dirs or sandbox_dirs(backend, machine)
    return cgroup.parse_snapshot(read_dir(directory, psi), timestamp=time.monotonic())
