"""Dropping a cgroup's page cache from the host (v1 memory.force_empty, v2 memory.reclaim)."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

from labcoat.cgroup.parse import parse_value

# ---------------------------------------------------------------------------------------------
# Dropping a cgroup's page cache from the host


@dataclass(frozen=True)
class ReclaimResult:
    """What a reclaim write did: ``complete`` False when v2 reclaimed less than asked."""

    version: int
    path: str
    requested: int | None
    complete: bool
    detail: str


def _write_file(path: str, data: bytes) -> None:
    """One write(2) to a cgroup file, so errno reaches the caller unchanged."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def reclaim(cgroup_dir: str | os.PathLike[str], version: int, amount: int | None = None) -> ReclaimResult:
    """Drop page cache of one cgroup: v1 memory.force_empty, v2 memory.reclaim.

    v1: writing anything to memory.force_empty reclaims as much as it can and returns 0
    (memcontrol-v1.c mem_cgroup_force_empty); it works while tasks run. v2: memory.reclaim
    (5.19+) takes a byte count, default here the current usage; it returns EAGAIN when it
    reclaimed less than asked (memcontrol.c memory_reclaim), which is normal when the rest is
    anonymous memory without swap, so it is reported as incomplete, not raised.
    Other errors (EROFS from inside a container, EACCES, ENOENT) propagate as OSError.
    """
    cgroup_dir = os.fspath(cgroup_dir)
    if version == 1:
        path = os.path.join(cgroup_dir, "memory.force_empty")
        _write_file(path, b"0\n")
        return ReclaimResult(1, path, None, True, "memory.force_empty written")
    if version != 2:
        raise ValueError(f"cgroup version must be 1 or 2, not {version!r}")
    path = os.path.join(cgroup_dir, "memory.reclaim")
    if amount is None:
        amount = parse_value(Path(cgroup_dir, "memory.current").read_text()) or 0
    try:
        _write_file(path, f"{amount}\n".encode())
    except OSError as exc:
        if exc.errno != errno.EAGAIN:
            raise
        return ReclaimResult(2, path, amount, False,
                             "EAGAIN: reclaimed less than requested (the rest is not reclaimable now)")
    return ReclaimResult(2, path, amount, True, f"reclaimed {amount} bytes")


_RECLAIM_SCRIPT = (
    'd=$1; v=$2; amt=$3\n'
    'if [ "$v" = 1 ]; then p="$d/memory.force_empty"; amt=0\n'
    'else p="$d/memory.reclaim"; [ -n "$amt" ] || read -r amt < "$d/memory.current" || exit 1; fi\n'
    # test -w first: it turns EROFS/EACCES into a clean message, so that a later write error
    # can only come from the kernel's reclaim (EAGAIN on v2).
    'if [ ! -w "$p" ]; then echo "reclaim: failed: $p is not writable"; exit 1; fi\n'
    'if printf "%s\\n" "$amt" > "$p" 2>/dev/null; then echo "reclaim: done $amt"; exit 0; fi\n'
    'if [ "$v" = 2 ]; then echo "reclaim: partial $amt"; exit 0; fi\n'
    'echo "reclaim: failed: write to $p"; exit 1\n'
)


def reclaim_command(version: int, cgroup_dir: str, amount: int | None = None) -> list[str]:
    """argv doing what reclaim() does, for a shell on the host (e.g. through sudo).

    It prints one line: ``reclaim: done N``, ``reclaim: partial N`` (v2 write error after
    the file opened: the EAGAIN case) or ``reclaim: failed: …`` with exit status 1.
    """
    if version not in (1, 2):
        raise ValueError(f"cgroup version must be 1 or 2, not {version!r}")
    return ["sh", "-c", _RECLAIM_SCRIPT, "labcoat-reclaim", cgroup_dir, str(version),
            "" if amount is None else str(amount)]
