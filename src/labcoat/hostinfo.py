"""What this host can show and do: PSI, swap, cgroup version, negative oom_score_adj.

Content declares `requires: [psi]` and the like; these probes decide, and the reason a
part or scenario is skipped comes from here. All probes read files; none needs Docker.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CAP_SYS_RESOURCE = 24
TIME_SCALE_ENV = "LABCOAT_TIME_SCALE"


@dataclass(frozen=True)
class Feature:
    name: str
    available: bool
    detail: str
    fix: str = ""


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def cgroup_version(root: str = "/sys/fs/cgroup") -> int:
    """2 on a unified host whose root has the memory controller, else 1 (see labcoat.cgroup)."""
    from labcoat.cgroup import detect_version

    return detect_version(root) or 1


def has_psi() -> Feature:
    text = _read("/proc/pressure/memory")
    if text.startswith("some"):
        return Feature("psi", True, "/proc/pressure/memory is readable")
    return Feature(
        "psi", False, "the kernel exposes no PSI (/proc/pressure/memory is missing or disabled)",
        fix="boot the kernel with psi=1 (CONFIG_PSI_DEFAULT_DISABLED kernels), or use a kernel built with CONFIG_PSI",
    )


def has_swap() -> Feature:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("SwapTotal:"):
            kib = int(line.split()[1])
            if kib:
                return Feature("swap", True, f"{kib // 1024} MiB of swap")
    return Feature("swap", False, "this host has no swap", fix="add a swap file (fallocate, mkswap, swapon) to try swap scenarios")


def can_lower_oom_adj() -> Feature:
    """Negative oom_score_adj needs CAP_SYS_RESOURCE, which containers only get if the host has it."""
    for line in _read("/proc/self/status").splitlines():
        if line.startswith("CapBnd:"):
            bounding = int(line.split()[1], 16)
            if bounding >> CAP_SYS_RESOURCE & 1:
                return Feature("negative_oom_adj", True, "CAP_SYS_RESOURCE is in the capability bounding set")
            return Feature(
                "negative_oom_adj", False,
                "CAP_SYS_RESOURCE is missing from this host's bounding set: nobody here can set oom_score_adj < 0",
                fix="labs use the nearest allowed values (0 instead of -997); a host with full capabilities can do both",
            )
    return Feature("negative_oom_adj", False, "cannot read the capability bounding set")


def time_scale(environ: dict[str, str] | None = None) -> float:
    """How much longer than content's own timeouts a step may take on this host (>= 1).

    LABCOAT_TIME_SCALE=4 on an emulated host (qemu TCG runs ~35x slower than natively, and
    the proving ground's VMs share their cores); anything unreadable or below 1 counts as 1.
    Only limits scale (how long to wait before giving up, and how fast labcoat itself must
    notice an OOM kill); what a check or an expectation judges of the kernel never does.
    """
    import os

    text = (environ if environ is not None else os.environ).get(TIME_SCALE_ENV, "")
    try:
        value = float(text)
    except ValueError:
        return 1.0
    return value if value >= 1 and value < float("inf") else 1.0


def features() -> dict[str, Feature]:
    """Every feature content may require, probed now."""
    version = cgroup_version()
    found = [has_psi(), has_swap(), can_lower_oom_adj(),
             Feature("cgroup_v1", version == 1, f"cgroup v{version}"),
             Feature("cgroup_v2", version == 2, f"cgroup v{version}")]
    return {f.name: f for f in found}


def missing(required: tuple[str, ...] | list[str]) -> list[Feature]:
    """The required features this host lacks."""
    have = features()
    return [have[name] for name in required if not have[name].available]
