"""What a submission's script may use (`Limits`) and every grading sandbox's limits in plain words (docs/grading.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labcoat.content.models import Lab, SandboxSpec


@dataclass(frozen=True)
class Limits:
    """What a submission's script may use (documented in docs/grading.md)."""

    script_timeout: float = 60.0  # wall clock per script, seconds
    max_output: int = 64 * 1024  # bytes of output kept per script (stdout and stderr together)
    pids_limit: int | None = None  # None: the lab's sandbox pids_limit
    cpus: float | None = None  # per sandbox; None: the lab's, capped to a fair share of the host (capacity.cpu_cap)
    grade_timeout: float = 900.0  # the whole submission, seconds; beyond it: ungradable

    def to_dict(self) -> dict[str, Any]:
        return {"script_timeout": self.script_timeout, "max_output": self.max_output,
                "pids_limit": self.pids_limit, "cpus": self.cpus, "grade_timeout": self.grade_timeout,
                "network": False, "capabilities": "all dropped (plus the lab's cap_add)",
                "no_new_privileges": True}


def sandbox_limits(lab: Lab, limits: Limits, part_ids: list[str] | tuple[str, ...] = (),
                   supports: dict[str, bool] | None = None) -> dict[str, Any]:
    """The limits of every grading sandbox (for the report's `limits`, `lab status`, `lab doctor`)."""
    from labcoat.grading.capacity import lab_sandboxes

    supports = supports or {}
    out: dict[str, Any] = {}
    wanted = set(part_ids)
    names = ["main"] + [p.id for p in lab.parts if p.sandbox and (not wanted or p.id in wanted)
                        and p.runs_on != "host"]
    for name, spec in zip(names, lab_sandboxes(lab, part_ids), strict=True):
        out[name] = describe_sandbox(spec, cpus=effective_cpus(spec, limits), pids=_pids(spec, limits),
                                     supports=supports)
    return out


def describe_sandbox(spec: SandboxSpec, *, cpus: float | None = None, pids: int | None = None,
                     supports: dict[str, bool] | None = None) -> dict[str, Any]:
    """One sandbox's limits and how each is enforced, in plain words (JSON-ready)."""
    supports = supports or {}
    io = supports.get("BlkioWeight")
    return {
        "memory": spec.memory_bytes, "swap": spec.swap_bytes, "pids_limit": pids or spec.pids_limit,
        "disk": spec.disk_bytes,
        "disk_enforced": ("read-only root filesystem: only the tmpfs folders are writable" if spec.read_only_root
                          else "RLIMIT_FSIZE caps every file; lab grade also measures the writable layer from the "
                          "host while a script runs and stops the script at the limit"),
        "tmpfs": spec.tmpfs_bytes, "tmpfs_enforced": "size-limited tmpfs, pages charged to the memory cgroup",
        "read_only_root": spec.read_only_root,
        "cpus": cpus if cpus is not None else spec.cpus, "cpu_shares": spec.cpu_shares,
        "io_weight": spec.io_weight if io else None,
        "io_weight_enforced": ("blkio/io weight" if io else "not supported by this host's I/O scheduler or "
                               "cgroup (no blkio.weight on v1, no io controller on v2): not applied" if supports else "unknown"),
    }


def effective_cpus(spec: SandboxSpec, limits: Limits) -> float | None:
    """The --cpus a grading sandbox gets: the lab's, within the cap `limits.cpus` (a fair share)."""
    if limits.cpus and spec.cpus:
        return min(limits.cpus, spec.cpus)
    return limits.cpus or spec.cpus


def _pids(spec: SandboxSpec, limits: Limits) -> int:
    return min(spec.pids_limit, limits.pids_limit) if limits.pids_limit else spec.pids_limit
