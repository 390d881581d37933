"""What a grading host must have, and what each grading sandbox may take of it.

- **Disk.** A sandbox writes to its container's writable layer, which lives on the
  engine's disk. Every file is capped by RLIMIT_FSIZE (the lab's `sandbox.disk`, enforced
  by the kernel), and while `lab grade` runs a script the whole layer is measured from the
  host (`layer_bytes`): past the limit the script is stopped. `tmpfs` folders are in memory.
- **CPU.** `cpu_cap`: each grading container gets `--cpus` = the host's CPUs divided by the
  containers that can run at once (`--jobs` x `grading_containers`: one submission's sandboxes,
  plus, for a `runs_on: host` part, its runner and the learner containers its `docker` may
  start through the proxy), so all of them together never get more CPU than the machine has.
- **Before grading** (`preflight`): free disk, free memory and free PIDs for `--jobs`
  submissions at their limits, plus a floor for the host itself; `lab grade` refuses
  (exit 5) and `lab doctor` warns when they are not there.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labcoat.backends.base import Backend, Machine
    from labcoat.content.models import Lab, Part, SandboxSpec

# Free space the grading host keeps for itself whatever the sandboxes take (disk and memory).
DISK_FLOOR = 1 << 30
MEMORY_FLOOR = 512 << 20
PIDS_FLOOR = 1024
# Walking a writable layer stops after this many entries: a script that made more files than this
# is over any sensible limit anyway (and each walk must stay cheap).
MAX_WALK = 200_000


def mib(n: float | None) -> str:
    return "-" if n is None else f"{n / (1 << 20):.0f} MiB"


def lab_sandboxes(lab: Lab, part_ids: Iterable[str] = ()) -> list[SandboxSpec]:
    """The sandboxes grading one submission starts: the lab's own and each graded part's own."""
    wanted = set(part_ids)
    parts = [p for p in lab.parts if (not wanted or p.id in wanted) and p.runs_on != "host"]
    return [lab.sandbox, *[p.sandbox for p in parts if p.sandbox]]


def host_part_containers(lab: Lab, part_ids: Iterable[str] = ()) -> list[tuple[Part, int]]:
    """The containers a `runs_on: host` part adds while it is graded: (part, count) for the parts that can
    run at the same time.

    Each such part has a runner container (its script) and up to `learner_docker.max_containers`
    (2 unset) learner containers its `docker` starts through the proxy. The parts of one sandbox
    are graded one after the other (grade._grade_sandboxes): of those only the largest counts;
    parts of different sandboxes run at the same time and add up.
    """
    wanted = set(part_ids)
    by_sandbox: dict[str, tuple[Part, int]] = {}
    for part in lab.parts:
        if part.runs_on != "host" or (wanted and part.id not in wanted):
            continue
        count = 1 + (part.learner_docker.max_containers if part.learner_docker else 2)
        where = part.id if part.sandbox else ""
        if where not in by_sandbox or by_sandbox[where][1] < count:
            by_sandbox[where] = (part, count)
    return list(by_sandbox.values())


def grading_containers(lab: Lab, part_ids: Iterable[str] = ()) -> int:
    """Containers of one submission's grading that can run at once (what the CPU cap divides by)."""
    return footprint(lab, part_ids).containers


def cpu_cap(host_cpus: int, jobs: int, sandboxes: int, wanted: float | None = None) -> float:
    """CPUs per grading container: the lab's (or one host's worth), never more than a fair share.

    `sandboxes`: the containers of one submission that can run at once (`grading_containers`).
    """
    share = host_cpus / max(1, jobs * max(1, sandboxes))
    cap = min(wanted, share) if wanted else share
    return max(0.01, math.floor(cap * 100 + 1e-9) / 100)  # rounded down: rounding up would oversubscribe


def host_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# ----------------------------------------------------------------------------- a sandbox's disk


def layer_bytes(backend: Backend, machine: Machine) -> int | None:
    """Bytes the sandbox has written to its writable layer (None: cannot be told here).

    Reads the overlay upper directory directly where this process may (root), else asks the
    engine (`docker inspect --size`, SizeRw), which a grader in the docker group may.
    """
    try:
        info = backend.inspect(machine)
    except Exception:  # noqa: BLE001 - gone: nothing to measure
        return None
    upper = ((info.get("GraphDriver") or {}).get("Data") or {}).get("UpperDir")
    if upper and os.access(upper, os.R_OK | os.X_OK):
        return _walk(Path(upper))
    try:
        sized = backend.inspect(machine, size=True)
    except Exception:  # noqa: BLE001
        return None
    value = sized.get("SizeRw")
    return int(value) if value is not None else None


def _walk(root: Path) -> int:
    total, seen, stack = 0, 0, [str(root)]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                for entry in it:
                    seen += 1
                    if seen > MAX_WALK:
                        return max(total, 1 << 62)  # far too many files: over any limit
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    total += st.st_blocks * 512
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
        except OSError:
            continue
    return total


# ----------------------------------------------------------------------------- the grading host


@dataclass
class Need:
    """One resource the grading needs: what it must have, what the host has."""

    name: str
    needed: int
    free: int | None
    unit: str
    detail: str

    @property
    def ok(self) -> bool:
        return self.free is None or self.free >= self.needed

    def text(self) -> str:
        show = mib if self.unit == "bytes" else (lambda n: "-" if n is None else f"{n}")
        if self.free is None:
            return f"{self.name}: cannot be measured here ({self.detail})"
        verdict = "enough" if self.ok else "NOT ENOUGH"
        return f"{self.name}: {show(self.free)} free, {show(self.needed)} needed ({self.detail}): {verdict}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "needed": self.needed, "free": self.free, "unit": self.unit, "ok": self.ok,
                "detail": self.detail}


def free_disk(path: str) -> int | None:
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def free_memory() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def free_pids() -> int | None:
    """PIDs that can still be allocated: pid_max and threads-max less the tasks that exist."""
    try:
        pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
        threads_max = int(Path("/proc/sys/kernel/threads-max").read_text())
        running = int(Path("/proc/loadavg").read_text().split()[3].split("/")[1])
    except (OSError, ValueError, IndexError):
        return None
    return min(pid_max, threads_max) - running


@dataclass(frozen=True)
class Footprint:
    """What grading one submission can take at once, at its containers' limits."""

    disk: int
    memory: int
    pids: int
    sandboxes: int  # the lab's and its graded parts' own sandboxes
    host_containers: int  # runners and learner containers of `runs_on: host` parts

    @property
    def containers(self) -> int:
        return self.sandboxes + self.host_containers


def footprint(lab: Lab, part_ids: Iterable[str] = (), pids_limit: int | None = None) -> Footprint:
    """Disk, memory and PIDs of one submission's grading: its sandboxes and its host parts' containers."""
    boxes = lab_sandboxes(lab, part_ids)
    disk = sum(b.disk_bytes for b in boxes)
    memory = sum(b.memory_bytes + b.swap_bytes for b in boxes)
    pids = sum(min(b.pids_limit, pids_limit or b.pids_limit) for b in boxes)
    extra = 0
    for part, count in host_part_containers(lab, part_ids):
        # A host part's runner (the lab's sandbox limits) and its learner containers (the proxy's policy);
        # their layers share one disk limit (the runner's DiskWatch counts them together).
        spec, learners = part.learner_docker, count - 1
        runner_pids = min(lab.sandbox.pids_limit, pids_limit or lab.sandbox.pids_limit)
        disk += lab.sandbox.disk_bytes
        memory += lab.sandbox.memory_bytes + learners * (spec.max_memory_bytes if spec else lab.sandbox.memory_bytes)
        pids += runner_pids + learners * (spec.pids_limit if spec else 64)
        extra += count
    return Footprint(disk, memory, pids, len(boxes), extra)


def preflight(lab: Lab, *, jobs: int = 1, part_ids: Iterable[str] = (), data_root: str | None = None,
              pids_limit: int | None = None) -> list[Need]:
    """Disk, memory and PIDs for `jobs` submissions at their sandboxes' limits, plus the host's floor."""
    one = footprint(lab, part_ids, pids_limit)
    disk, memory, pids = one.disk * jobs + DISK_FLOOR, one.memory * jobs + MEMORY_FLOOR, one.pids * jobs + PIDS_FLOOR
    extra = one.host_containers
    where = data_root or "/var/lib/docker"
    if not os.path.exists(where):
        where = "/"
    each = f"{one.sandboxes} sandbox(es)" + (f" and {extra} container(s) of host parts" if extra else "")
    each += f" per submission x {jobs} at a time"
    return [
        Need("disk", disk, free_disk(where), "bytes",
             f"{each} at their disk limits, plus {mib(DISK_FLOOR)} for the host, on {where}"),
        Need("memory", memory, free_memory(), "bytes",
             f"{each} at their memory limits, plus {mib(MEMORY_FLOOR)} for the host"),
        Need("pids", pids, free_pids(), "pids", f"{each} at their pids limits, plus {PIDS_FLOOR} for the host"),
    ]


def shortage(needs: list[Need]) -> str | None:
    """None when every need is met, else one sentence naming what is short."""
    short = [n for n in needs if not n.ok]
    if not short:
        return None
    return "this grading machine is short of " + "; ".join(n.text() for n in short)
