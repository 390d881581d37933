"""The normalised snapshot (MemorySnapshot): one set of figures whatever the cgroup version."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from labcoat.cgroup.parse import (
    FILE_PARSERS,
    SYSTEM_PSI_PATH,
    V1_TO_V2_STAT,
    Pressure,
    detect_capture_version,
    split_capture,
)

# ---------------------------------------------------------------------------------------------
# The normalised snapshot


@dataclass(frozen=True)
class MemorySnapshot:
    """One memory cgroup at one moment, in v2 vocabulary whichever version was read.

    Byte counts throughout. A field is None when the file it comes from was not in the
    capture (or, for limits, when there is no limit): nothing is ever invented.
    """

    version: int
    timestamp: float
    # limits: memory.max / memory.limit_in_bytes; swap allowance on top of memory.
    limit: int | None
    swap_limit: int | None
    # usage: memory.current / memory.usage_in_bytes (v1 usage includes kernel memory, so
    # usage > anon + file even on an idle container: measured 1757184 vs rss 122880).
    usage: int | None
    peak: int | None
    swap: int | None
    anon: int | None
    file: int | None
    shmem: int | None
    file_dirty: int | None
    file_writeback: int | None
    file_mapped: int | None
    active_file: int | None
    inactive_file: int | None
    # usage - inactive_file, floored at 0: what kubelet/cAdvisor call the working set and
    # what eviction compares with memory.available (cadvisor container/libcontainer handler).
    workingset: int | None
    # OOM-kill counter: v1 memory.oom_control oom_kill, v2 memory.events oom_kill. The
    # counter that moves on every kill, children included; it lives until rmdir.
    oom_kill: int | None
    # v2 memory.events `oom`: how many times the cgroup hit its limit and reclaim failed (a
    # counter). v1 has no counter for that: its under_oom is a *state* (1 only while tasks
    # wait with oom_kill_disable=1), so it is kept apart in `under_oom` instead of mixing a
    # counter with a flag in one field.
    oom: int | None
    under_oom: bool | None
    oom_kill_disable: bool | None
    # v1 memory.failcnt: charges that failed at the memory limit. It stays 0 when
    # memsw limit == memory limit, because the memsw counter is charged first and fails
    # instead, and memsw.failcnt is not tracked (mm/memcontrol.c mem_cgroup_css_alloc sets
    # track_failcnt only on the v1 memory counter; measured: 0 after OOMs at 64m/64m, 311 at 64m/128m).
    # None on v2, which has no such file; use
    # events["max"] there (how often usage was about to exceed memory.max).
    failcnt: int | None
    # This cgroup's PSI (v2 memory.pressure, or the cgroup2 twin on a hybrid host).
    pressure: Pressure | None
    # System-wide PSI (/proc/pressure/memory). Inside a container it shows host values.
    system_pressure: Pressure | None
    stat: Mapping[str, int] | None = field(default=None, hash=False)
    events: Mapping[str, int] | None = field(default=None, hash=False)
    events_local: Mapping[str, int] | None = field(default=None, hash=False)
    oom_control: Mapping[str, int] | None = field(default=None, hash=False)
    files: frozenset[str] = frozenset()
    preamble: tuple[str, ...] = ()

    def stat_v2(self, name: str) -> int | None:
        """A memory.stat value by its v2 name, whichever version was read."""
        if self.stat is None:
            return None
        if self.version == 2:
            return self.stat.get(name)
        return _v1_stat(self.stat, name)


_V2_TO_V1_STAT = {v2: v1 for v1, v2 in V1_TO_V2_STAT.items()}


def _v1_stat(stat: Mapping[str, int], v2_name: str) -> int | None:
    """A v1 stat by v2 name, preferring the hierarchical ``total_*`` value.

    ``total_*`` includes child cgroups (memcontrol-v1.c memcg1_stat_format); for a Docker
    container without children both agree, but a lab may create children.
    """
    v1_name = _V2_TO_V1_STAT.get(v2_name, v2_name)
    for key in ("total_" + v1_name, v1_name):
        if key in stat:
            return stat[key]
    return None


def _sub_or_none(a: int | None, b: int | None) -> int | None:
    """a - b, or None when either is unknown."""
    return None if a is None or b is None else a - b


def _workingset(usage: int | None, inactive_file: int | None) -> int | None:
    """usage - inactive_file, 0 when inactive_file exceeds usage (as cAdvisor does)."""
    if usage is None or inactive_file is None:
        return None
    return max(0, usage - inactive_file)


def snapshot_from_files(files: Mapping[str, str], version: int | None = None, timestamp: float = 0.0,
                        preamble: tuple[str, ...] = ()) -> MemorySnapshot:
    """Build a MemorySnapshot from ``{file name: text}``."""
    version = version or detect_capture_version(files)

    def get(name: str) -> object:
        text = files.get(name)
        return None if text is None else FILE_PARSERS[name](text)

    stat = get("memory.stat")
    stat = stat if isinstance(stat, dict) else None
    pressure = get("memory.pressure")
    system_pressure = get(SYSTEM_PSI_PATH)

    def st(name: str) -> int | None:
        if stat is None:
            return None
        return stat.get(name) if version == 2 else _v1_stat(stat, name)

    if version == 1:
        limit = get("memory.limit_in_bytes")
        memsw = get("memory.memsw.limit_in_bytes")
        usage = get("memory.usage_in_bytes")
        oom_control = get("memory.oom_control")
        oc = oom_control if isinstance(oom_control, dict) else {}
        # memsw - memory is the swap a v1 cgroup may use (mem_cgroup_get_max in memcontrol.c).
        swap_limit = _sub_or_none(memsw, limit) if "memory.memsw.limit_in_bytes" in files else None
        common = dict(
            limit=limit,
            swap_limit=swap_limit,
            usage=usage,
            peak=get("memory.max_usage_in_bytes"),
            swap=st("swap"),
            oom_kill=oc.get("oom_kill"),
            oom=None,
            under_oom=bool(oc["under_oom"]) if "under_oom" in oc else None,
            oom_kill_disable=bool(oc["oom_kill_disable"]) if "oom_kill_disable" in oc else None,
            failcnt=get("memory.failcnt"),
            events=None,
            events_local=None,
            oom_control=oom_control,
        )
    elif version == 2:
        events = get("memory.events")
        ev = events if isinstance(events, dict) else {}
        usage = get("memory.current")
        common = dict(
            limit=get("memory.max"),
            swap_limit=get("memory.swap.max"),
            usage=usage,
            peak=get("memory.peak"),
            swap=get("memory.swap.current"),
            oom_kill=ev.get("oom_kill"),
            oom=ev.get("oom"),
            under_oom=None,
            oom_kill_disable=None,
            failcnt=None,
            events=events,
            events_local=get("memory.events.local"),
            oom_control=None,
        )
    else:
        raise ValueError(f"cgroup version must be 1 or 2, not {version!r}")

    inactive_file = st("inactive_file")
    return MemorySnapshot(
        version=version,
        timestamp=timestamp,
        anon=st("anon"),
        file=st("file"),
        shmem=st("shmem"),
        file_dirty=st("file_dirty"),
        file_writeback=st("file_writeback"),
        file_mapped=st("file_mapped"),
        active_file=st("active_file"),
        inactive_file=inactive_file,
        workingset=_workingset(common["usage"], inactive_file),  # type: ignore[arg-type]
        pressure=pressure if isinstance(pressure, Pressure) else None,
        system_pressure=system_pressure if isinstance(system_pressure, Pressure) else None,
        stat=stat,
        files=frozenset(files),
        preamble=preamble,
        **common,  # type: ignore[arg-type]
    )


def parse_snapshot(text: str, version: int | None = None, timestamp: float = 0.0) -> MemorySnapshot:
    """Parse a fixture or the output of snapshot_command/inside_snapshot_command."""
    capture = split_capture(text)
    return snapshot_from_files(capture.files, version=version, timestamp=timestamp,
                               preamble=capture.preamble)
