"""The disk bound of a learner's sandboxes: a per-user background watcher of their writable layers.

A sandbox writes to its container's writable layer, on the engine's disk. The kernel caps
every file (RLIMIT_FSIZE = the lab's `sandbox.disk`), but not their sum, and Docker's own
quota (`--storage-opt size`) exists only on some storage drivers (overlay2 on xfs with
pquota, btrfs, zfs): where the engine has it, the sandbox is started with it and nothing
here is needed. Elsewhere (overlay2 on ext4, as on most hosts) `lab start`, `lab check` and
`lab status` make sure `python -m labcoat.runner.diskwatch serve` runs for this user:

- every INTERVAL it measures the writable layer of each of this owner's running lab sandboxes
  (capacity.layer_bytes: the overlay upper folder where readable, else the engine's SizeRw);
- past the sandbox's limit, every process in it gets a soft RLIMIT_FSIZE of 0 (`prlimit`, run
  in the sandbox as the process's own user): a write that grows a file fails, the writer is
  stopped with "File size limit exceeded" (SIGXFSZ), as on a full disk. Processes started
  later (a new `lab shell`) get the same at the next round. Once files are deleted and the
  layer is back under the limit, every process gets its full limit back;
- it writes what it found to STATE/diskwatch.json, where `lab status` and `lab check` read it
  (and tell the learner why writes fail);
- it exits when this owner has no running lab sandbox left (or the engine is gone).

A polled bound overshoots by what a sandbox can write within one round (each file stays
under the per-file limit), and cannot see a file that is deleted while still open.
`LABCOAT_DISKWATCH=0` turns it off.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labcoat.backends.base import Backend, Machine

INTERVAL = 0.5  # seconds between two rounds
STALE = 10.0  # a state file older than this: no watcher runs
IDLE_ROUNDS = 6  # rounds without any running sandbox of this owner: the watcher exits
STATE_FILE = "diskwatch.json"
LOCK_FILE = "diskwatch.lock"

# Run in the sandbox: set the soft RLIMIT_FSIZE of every process but this script's own to $1.
# prlimit may change another process's limits when it runs as that process's user (setpriv).
RESTRICT = r"""soft=$1
cat /proc/[0-9]*/status 2>/dev/null | awk '/^Pid:/{p=$2} /^Uid:/{u=$2} /^Gid:/{print p, u, $2}' |
while read -r pid uid gid; do
  [ "$pid" = "$$" ] && continue
  if [ "$uid" = 0 ]; then prlimit --pid "$pid" --fsize="$soft": 2>/dev/null
  else setpriv --reuid="$uid" --regid="$gid" --clear-groups prlimit --pid "$pid" --fsize="$soft": 2>/dev/null
  fi
done
exit 0
"""


def enabled() -> bool:
    return os.environ.get("LABCOAT_DISKWATCH", "1") != "0"


def state_path() -> Path:
    from labcoat.paths import state_dir

    return state_dir() / STATE_FILE


# ----------------------------------------------------------------------------- what the CLI asks


def ensure_running(backend: Backend) -> bool:
    """Start the watcher for this user unless one runs (or it is off, or this backend has no layers)."""
    if not enabled() or not getattr(backend, "watches_layers", False):
        return False
    if _lock_held():
        return True
    import subprocess

    subprocess.Popen(
        [sys.executable, "-m", "labcoat.runner.diskwatch", "serve"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, close_fds=True, env={**os.environ, "LABCOAT_BACKEND": backend.name},
    )
    return True


def read_state() -> dict[str, Any] | None:
    """What the watcher last wrote, or None when no watcher runs (nothing written lately)."""
    try:
        data = json.loads(state_path().read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or time.time() - float(data.get("updated") or 0) > STALE:
        return None
    return data


def disk_of(machine_id: str) -> dict[str, Any] | None:
    """The watcher's last reading of one sandbox: used, limit, full, since (None: not watched now)."""
    data = read_state()
    entry = ((data or {}).get("sandboxes") or {}).get(machine_id)
    return entry if isinstance(entry, dict) else None


def full_message(name: str, entry: dict[str, Any]) -> str:
    from labcoat.grading.capacity import mib

    return (f"the disk of sandbox {name} is full: it holds {mib(entry.get('used'))}, its limit is "
            f"{mib(entry.get('limit'))}. Until you delete files (rm) to get under it, a process that grows a "
            "file is stopped (\"File size limit exceeded\"; a shell too, as on a full disk)")


def full_sandboxes(machines: list[Machine]) -> list[str]:
    """One sentence per sandbox among `machines` that is past its disk limit now."""
    out = []
    for machine in machines:
        entry = disk_of(machine.id)
        if entry and entry.get("full"):
            out.append(full_message(machine.name, entry))
    return out


# ----------------------------------------------------------------------------- the watcher


def _lock_held() -> bool:
    """Whether a watcher holds the lock now (it keeps it while it runs)."""
    import fcntl

    from labcoat.paths import state_dir

    try:
        with open(state_dir() / LOCK_FILE, "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(fh, fcntl.LOCK_UN)
            return False
    except OSError:
        return True  # cannot tell: do not start another


def disk_limit(limits: dict[str, Any]) -> int | None:
    """The sandbox's disk limit from `Backend.limits` (its RLIMIT_FSIZE), None when the engine bounds
    the layer itself (--storage-opt size) or there is no limit."""
    disk = limits.get("disk") or {}
    if disk.get("quota"):
        return None
    return int(disk["per_file"]) if disk.get("per_file") else None


class Watcher:
    """One round after another over this owner's running lab sandboxes (the serve loop; tests call `round`)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.full: dict[str, float] = {}  # machine id -> since when it is past its limit
        self.limits: dict[str, int | None] = {}
        self.uppers: dict[str, str | None] = {}  # machine id -> its overlay upper folder, where readable
        self.idle = 0

    def round(self) -> dict[str, Any]:
        from labcoat.grading.capacity import _walk, layer_bytes
        from labcoat.runner.session import find_lab_sandboxes

        seen: dict[str, Any] = {}
        present: set[str] = set()
        for sandbox in find_lab_sandboxes(self.backend):
            machine = sandbox.machine
            if not machine.is_running:
                continue
            present.add(machine.id)
            if machine.id not in self.limits:
                try:
                    info = self.backend.inspect(machine)
                    self.limits[machine.id] = disk_limit(self.backend.limits(machine))
                except Exception:  # noqa: BLE001 - gone meanwhile
                    continue
                upper = ((info.get("GraphDriver") or {}).get("Data") or {}).get("UpperDir")
                self.uppers[machine.id] = upper if upper and os.access(upper, os.R_OK | os.X_OK) else None
            limit = self.limits[machine.id]
            if not limit:
                continue
            upper = self.uppers.get(machine.id)
            used = _walk(Path(upper)) if upper else layer_bytes(self.backend, machine)
            if used is None:
                continue
            over = used > limit
            if over:  # every round while full: also the processes started since
                self._restrict(machine, "0")
                self.full.setdefault(machine.id, time.time())
            elif machine.id in self.full:
                self._restrict(machine, str(limit))
                del self.full[machine.id]
            seen[machine.id] = {"name": machine.name, "used": used, "limit": limit, "full": over,
                                "since": self.full.get(machine.id)}
        for gone in set(self.limits) - present:  # removed sandboxes: forget them
            self.limits.pop(gone, None)
            self.uppers.pop(gone, None)
            self.full.pop(gone, None)
        self.idle = 0 if present else self.idle + 1
        return {"pid": os.getpid(), "interval": INTERVAL, "updated": time.time(), "sandboxes": seen}

    def _restrict(self, machine: Machine, soft: str) -> None:
        with contextlib.suppress(Exception):  # stopped meanwhile, or its pids limit reached: next round
            self.backend.run(machine, ["sh", "-c", RESTRICT, "labcoat-disk", soft], timeout=30)


def _write_state(data: dict[str, Any]) -> None:
    path = state_path()
    tmp = path.with_name(f"{STATE_FILE}.{os.getpid()}")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def serve() -> None:
    """Watch until this owner has no running lab sandbox (one watcher per state folder: a lock)."""
    import fcntl

    from labcoat.backends import DEFAULT_BACKEND, get_backend
    from labcoat.paths import state_dir

    lock = open(state_dir() / LOCK_FILE, "a+")  # noqa: SIM115 - held for the life of the process
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return  # another watcher runs
    backend = get_backend(os.environ.get("LABCOAT_BACKEND") or DEFAULT_BACKEND)
    watcher = Watcher(backend)
    failures = 0
    while watcher.idle < IDLE_ROUNDS and failures < 60:
        began = time.monotonic()
        try:
            _write_state(watcher.round())
            failures = 0
        except Exception:  # noqa: BLE001 - the engine is away: try again for a while, then leave
            failures += 1
        time.sleep(max(0.05, INTERVAL - (time.monotonic() - began)))
    with contextlib.suppress(OSError):
        state_path().unlink()


if __name__ == "__main__":
    if sys.argv[1:] == ["serve"]:
        serve()
    else:
        sys.exit("usage: python -m labcoat.runner.diskwatch serve")
