"""Reading a cgroup in one round trip: the sh script run inside a container or on the host, and direct reads."""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

from labcoat.cgroup.parse import (
    INSIDE_V1_DIR,
    INSIDE_V2_DIR,
    SYSTEM_PSI_HEADER,
    SYSTEM_PSI_PATH,
    V1_FILES,
    V1_PSI_HEADER,
    V2_FILES,
)
from labcoat.cgroup.snapshot import MemorySnapshot, parse_snapshot

# ---------------------------------------------------------------------------------------------
# One round trip: a POSIX sh script using builtins only (no cat: busybox-only images and
# minimal rootfs work, and nothing forks per file). A file that cannot be read prints no
# header at all, so the parser reports it as None.

_DUMP_FN = (
    'dump() { [ -r "$2" ] || return 0; printf "=== %s\\n" "$1"; '
    '{ while IFS= read -r l || [ -n "$l" ]; do printf "%s\\n" "$l"; done < "$2"; } 2>/dev/null; }'
)


def _dump_script(files: tuple[str, ...]) -> str:
    """Script: $1 cgroup dir, $2 cgroup PSI path, $3 its header, $4 system PSI path."""
    names = " ".join(files)
    return (
        f"{_DUMP_FN}\n"
        f'for f in {names}; do dump "$f" "$1/$f"; done\n'
        '[ -n "$2" ] && dump "$3" "$2"\n'
        '[ -n "$4" ] && dump "host $4" "$4"\n'
        "exit 0\n"
    )


def snapshot_command(version: int, cgroup_dir: str, pressure_path: str | None = None,
                     system_pressure: str | None = SYSTEM_PSI_PATH) -> list[str]:
    """argv printing every snapshot file of ``cgroup_dir`` with ``=== name`` headers.

    ``pressure_path``: the cgroup's memory.pressure when it is not in ``cgroup_dir`` (v1
    hybrid hosts: see host_psi_path); v2 defaults to ``cgroup_dir/memory.pressure``.
    ``system_pressure``: the global PSI file to add, or None.

    >>> snapshot_command(2, "/sys/fs/cgroup/x")[-4:]
    ['/sys/fs/cgroup/x', '/sys/fs/cgroup/x/memory.pressure', 'memory.pressure', '/proc/pressure/memory']
    """
    if version == 1:
        files, header = V1_FILES, V1_PSI_HEADER
    elif version == 2:
        files, header = V2_FILES, "memory.pressure"
        pressure_path = pressure_path or posixpath.join(cgroup_dir, "memory.pressure")
    else:
        raise ValueError(f"cgroup version must be 1 or 2, not {version!r}")
    return ["sh", "-c", _dump_script(files), "labcoat-snapshot", cgroup_dir, pressure_path or "",
            header, system_pressure or ""]


_INSIDE_SCRIPT = (
    f"{_DUMP_FN}\n"
    f'if [ -r {INSIDE_V1_DIR}/memory.limit_in_bytes ]; then\n'
    f'  for f in {" ".join(V1_FILES)}; do dump "$f" "{INSIDE_V1_DIR}/$f"; done\n'
    f'elif [ -r {INSIDE_V2_DIR}/memory.max ] || [ -r {INSIDE_V2_DIR}/memory.current ]; then\n'
    f'  for f in {" ".join(V2_FILES)} memory.pressure; do dump "$f" "{INSIDE_V2_DIR}/$f"; done\n'
    "else\n"
    '  echo "--- no memory cgroup interface under /sys/fs/cgroup"\n'
    "fi\n"
    f'dump "{SYSTEM_PSI_HEADER}" {SYSTEM_PSI_PATH}\n'
    "exit 0\n"
)


def inside_snapshot_command() -> list[str]:
    """argv run inside a container: reads its own cgroup, v1 or v2, whichever is mounted.

    Inside a v1 container the cgroup2 hierarchy is not mounted, so there is no per-cgroup PSI
    (Docker mounts only the v1 hierarchies there); only the global /proc/pressure/memory, which shows host values.
    """
    return ["sh", "-c", _INSIDE_SCRIPT, "labcoat-snapshot"]


def read_capture(version: int, cgroup_dir: str | os.PathLike[str], pressure_path: str | None = None,
                 system_pressure: str | None = SYSTEM_PSI_PATH) -> str:
    """Read the same files as snapshot_command directly, in the same text format."""
    cgroup_dir = os.fspath(cgroup_dir)
    if version == 1:
        files, header = V1_FILES, V1_PSI_HEADER
    elif version == 2:
        files, header = V2_FILES, "memory.pressure"
        pressure_path = pressure_path or os.path.join(cgroup_dir, "memory.pressure")
    else:
        raise ValueError(f"cgroup version must be 1 or 2, not {version!r}")
    wanted = [(name, os.path.join(cgroup_dir, name)) for name in files]
    if pressure_path:
        wanted.append((header, pressure_path))
    if system_pressure:
        wanted.append((f"host {system_pressure}", system_pressure))
    out: list[str] = []
    for name, path in wanted:
        try:
            text = Path(path).read_text()
        except OSError:
            continue  # absent or vanished: report nothing rather than a guess
        if text and not text.endswith("\n"):
            text += "\n"
        out.append(f"=== {name}\n{text}")
    return "".join(out)


def read_snapshot(version: int, cgroup_dir: str | os.PathLike[str], pressure_path: str | None = None,
                  timestamp: float = 0.0, system_pressure: str | None = SYSTEM_PSI_PATH) -> MemorySnapshot:
    """read_capture + parse_snapshot, for code running where the cgroup files are."""
    text = read_capture(version, cgroup_dir, pressure_path, system_pressure)
    return parse_snapshot(text, version=version, timestamp=timestamp)
