"""Read a sandbox's memory cgroup, v1 or v2, in one round trip, and normalise it.

Everything here is pure text-in/value-out or path-taking, so the same code reads the
captured fixtures, a live host directory and the output of a command run in a container.

The wire format is the one of the fixtures: a few optional preamble lines (``--- kernel …``
comments, a status line), then for each file a header ``=== <name>`` followed by the file's
text. Headers may carry a qualifier before the name (``=== (cgroup2 hierarchy)
memory.pressure``, ``=== host /proc/pressure/memory``); the last word is the name.

Kernel references: Documentation/admin-guide/cgroup-v1/memory.rst,
Documentation/admin-guide/cgroup-v2.rst, mm/memcontrol.c, mm/memcontrol-v1.c, kernel/sched/psi.c.
"""

from __future__ import annotations

import errno
import os
import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

# v1 prints PAGE_COUNTER_MAX * PAGE_SIZE for "no limit" (9223372036854771712 with 4 KiB
# pages, mm/page_counter.c + memcontrol-v1.c mem_cgroup_read_u64). No real limit is that big.
UNLIMITED_THRESHOLD = 2**62

INSIDE_V1_DIR = "/sys/fs/cgroup/memory"
INSIDE_V2_DIR = "/sys/fs/cgroup"
SYSTEM_PSI_PATH = "/proc/pressure/memory"
SYSTEM_PSI_HEADER = "host " + SYSTEM_PSI_PATH
V1_PSI_HEADER = "(cgroup2 hierarchy) memory.pressure"

# The files one snapshot reads, in fixture order. memory.pressure is handled apart because on
# a v1 (hybrid) host it lives in the cgroup2 hierarchy, not next to the v1 files.
V1_FILES: tuple[str, ...] = (
    "memory.limit_in_bytes",
    "memory.memsw.limit_in_bytes",
    "memory.usage_in_bytes",
    "memory.max_usage_in_bytes",
    "memory.failcnt",
    "memory.oom_control",
    "memory.stat",
)
V2_FILES: tuple[str, ...] = (
    "memory.max",
    "memory.swap.max",
    "memory.current",
    "memory.peak",
    "memory.swap.current",
    "memory.events",
    "memory.events.local",
    "memory.stat",
)

_V1_MARKERS = frozenset(V1_FILES) - {"memory.stat"}
_V2_MARKERS = frozenset(V2_FILES) - {"memory.stat"}

# v1 memory.stat names -> v2 names (cgroup-v1/memory.rst §5.2 vs cgroup-v2.rst "memory.stat").
V1_TO_V2_STAT: Mapping[str, str] = {
    "rss": "anon",
    "cache": "file",
    "mapped_file": "file_mapped",
    "dirty": "file_dirty",
    "writeback": "file_writeback",
    "shmem": "shmem",
    "swap": "swap",
    "active_anon": "active_anon",
    "inactive_anon": "inactive_anon",
    "active_file": "active_file",
    "inactive_file": "inactive_file",
    "unevictable": "unevictable",
    "pgfault": "pgfault",
    "pgmajfault": "pgmajfault",
    "workingset_refault_anon": "workingset_refault_anon",
    "workingset_refault_file": "workingset_refault_file",
}


# ---------------------------------------------------------------------------------------------
# Single-file parsers


def parse_value(text: str) -> int | None:
    """A one-number file (usage_in_bytes, memory.current, failcnt …); None when empty.

    >>> parse_value("54861824\\n"), parse_value("")
    (54861824, None)
    """
    stripped = text.strip()
    return int(stripped) if stripped else None


def parse_limit(text: str) -> int | None:
    """A limit file: v2 ``max`` or a v1 number >= 2**62 mean no limit (None).

    >>> parse_limit("67108864"), parse_limit("max"), parse_limit("9223372036854771712")
    (67108864, None, None)
    """
    stripped = text.strip()
    if not stripped or stripped == "max":
        return None
    value = int(stripped)
    return None if value >= UNLIMITED_THRESHOLD else value


_KEYED_LINE = re.compile(r"^(\S+)\s+(-?\d+)$")


def parse_keyed(text: str) -> dict[str, int]:
    """A flat keyed file (memory.stat, memory.events[.local], memory.oom_control).

    Lines that are not ``name integer`` are skipped: captures sometimes carry trailing notes.

    >>> parse_keyed("oom_kill_disable 0\\nunder_oom 0\\noom_kill 1\\n")
    {'oom_kill_disable': 0, 'under_oom': 0, 'oom_kill': 1}
    """
    values: dict[str, int] = {}
    for line in text.splitlines():
        match = _KEYED_LINE.match(line.strip())
        if match:
            values[match.group(1)] = int(match.group(2))
    return values


@dataclass(frozen=True)
class PsiLine:
    """One PSI line: share of wall time stalled (percent) over 10/60/300 s, and total µs."""

    avg10: float
    avg60: float
    avg300: float
    total: int


@dataclass(frozen=True)
class Pressure:
    """A memory.pressure or /proc/pressure/memory file (kernel/sched/psi.c psi_show)."""

    some: PsiLine
    full: PsiLine | None = None


_PSI_LINE = re.compile(
    r"^(some|full)\s+avg10=([\d.]+)\s+avg60=([\d.]+)\s+avg300=([\d.]+)\s+total=(\d+)\s*$"
)


def parse_pressure(text: str) -> Pressure | None:
    """PSI text; None when there is no ``some`` line (file absent, PSI disabled, garbage).

    avg10 is refreshed only every 2 s (PSI_FREQ in kernel/sched/psi.c); ``total`` moves at once.

    >>> p = parse_pressure("some avg10=21.00 avg60=4.85 avg300=1.06 total=3673036\\n"
    ...                    "full avg10=21.00 avg60=4.85 avg300=1.06 total=3673036\\n")
    >>> p.some.avg10, p.full.total
    (21.0, 3673036)
    """
    lines: dict[str, PsiLine] = {}
    for line in text.splitlines():
        match = _PSI_LINE.match(line.strip())
        if match and match.group(1) not in lines:
            kind, a10, a60, a300, total = match.groups()
            lines[kind] = PsiLine(float(a10), float(a60), float(a300), int(total))
    if "some" not in lines:
        return None
    return Pressure(some=lines["some"], full=lines.get("full"))


# Which parser reads which file; the v1 and v2 memory.stat share one.
FILE_PARSERS: Mapping[str, Callable[[str], object]] = {
    "memory.limit_in_bytes": parse_limit,
    "memory.memsw.limit_in_bytes": parse_limit,
    "memory.usage_in_bytes": parse_value,
    "memory.max_usage_in_bytes": parse_value,
    "memory.failcnt": parse_value,
    "memory.oom_control": parse_keyed,
    "memory.stat": parse_keyed,
    "memory.max": parse_limit,
    "memory.swap.max": parse_limit,
    "memory.current": parse_value,
    "memory.peak": parse_value,
    "memory.swap.current": parse_value,
    "memory.events": parse_keyed,
    "memory.events.local": parse_keyed,
    "memory.pressure": parse_pressure,
    SYSTEM_PSI_PATH: parse_pressure,
}


def parse_file(name: str, text: str) -> object:
    """Parse one file's text by its name (see FILE_PARSERS)."""
    return FILE_PARSERS[name](text)


# ---------------------------------------------------------------------------------------------
# Multi-file capture


@dataclass(frozen=True)
class Capture:
    """A capture split into its preamble lines and ``{file name: text}``."""

    preamble: tuple[str, ...]
    files: Mapping[str, str]


def header_name(header: str) -> str:
    """The file name a ``===`` header stands for (``host PATH`` is the system-wide PSI).

    >>> header_name("(cgroup2 hierarchy) memory.pressure"), header_name("host /proc/pressure/memory")
    ('memory.pressure', '/proc/pressure/memory')
    >>> header_name("/sys/fs/cgroup/memory/memory.stat")
    'memory.stat'
    """
    words = header.split()
    if not words:
        return ""
    last = words[-1]
    # "host <path>" is the system-wide PSI file, wherever it was read from.
    if last == SYSTEM_PSI_PATH or (words[0] == "host" and len(words) == 2):
        return SYSTEM_PSI_PATH
    return last.rsplit("/", 1)[-1]


def split_capture(text: str) -> Capture:
    """Split ``=== name`` sections; empty sections count as missing files."""
    preamble: list[str] = []
    files: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("=== "):
            current = files.setdefault(header_name(line[4:]), [])
            current.clear()  # a repeated header means the file was read again: keep the last
        elif current is None:
            if line.strip():
                preamble.append(line)
        else:
            current.append(line)
    return Capture(
        preamble=tuple(preamble),
        files={name: "\n".join(lines) + "\n" for name, lines in files.items() if any(lines)},
    )


def detect_capture_version(files: Mapping[str, str]) -> int:
    """1 or 2, from the file names present (memory.stat keys as a last resort)."""
    names = set(files)
    v1, v2 = bool(names & _V1_MARKERS), bool(names & _V2_MARKERS)
    if v1 and v2:
        raise ValueError("capture mixes cgroup v1 and v2 files: " + ", ".join(sorted(names)))
    if v1 or v2:
        return 1 if v1 else 2
    stat = parse_keyed(files.get("memory.stat", ""))
    if "cache" in stat or "total_cache" in stat:
        return 1
    if "anon" in stat or "file" in stat:
        return 2
    raise ValueError("no memory cgroup files in capture (is the memory controller enabled?)")


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
