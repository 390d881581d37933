"""The memory cgroup's files, v1 and v2, one at a time (values, limits, keyed files, PSI), and the capture
format that carries several of them in one text."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

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
