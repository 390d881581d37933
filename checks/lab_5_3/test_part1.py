"""Part 1: free vs available. Answers are compared with the live kernel, never with a stored key."""

from __future__ import annotations

import pytest
from lab53 import ANSWERS_HINT, answers_of, snapshot

from labcoat.testing import expect, parse_size

SCRIPT = """
echo @@; cat /root/answers/part1.txt 2>/dev/null
echo @@; ps -eo pid=,comm=,rss=
echo @@; cat /proc/meminfo
echo @@; cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max
"""


@pytest.fixture(scope="module")
def live(host):
    return snapshot(host, SCRIPT, ["answers", "ps", "meminfo", "limit"])


answers = answers_of("part1")


@pytest.fixture(scope="module")
def ranking(live):
    rows = []
    for line in live["ps"].splitlines():
        pid, comm, rss = line.split(None, 2)
        rows.append((int(rss), int(pid), comm))
    return sorted(rows, reverse=True)


@pytest.fixture(scope="module")
def meminfo(live):
    return {line.split(":")[0]: int(line.split()[1]) for line in live["meminfo"].splitlines() if line.split()[1:]}


def _number(text):
    try:
        return int(str(text).split()[0])
    except (ValueError, IndexError, AttributeError):
        return None


def test_largest_process_pid(answers, ranking):
    """You recorded the PID of the process using the most memory (by RSS)."""
    rss, pid, comm = ranking[0]
    found = answers.get("largest_pid")
    expect(
        found == str(pid),
        expected="the PID of the process with the largest resident set size (RSS) right now",
        found=found or f"nothing ({ANSWERS_HINT})",
        hint="RSS is what a process really holds in RAM; `ps` can sort on any column (see `man ps`, --sort)."
        if found else ANSWERS_HINT,
    )


def test_largest_process_name(answers, ranking):
    """You recorded the name (command) of that process."""
    rss, pid, comm = ranking[0]
    found = answers.get("largest_name")
    expect(found == comm, expected="the command name of the largest process by RSS",
           found=found or "nothing recorded", hint="the comm column of ps, or /proc/PID/comm")


def _closer(value, live_value, other_value):
    return value is not None and abs(value - live_value) < abs(value - other_value)


def test_mem_free(answers, meminfo):
    """You recorded MemFree (in kB, as /proc/meminfo shows it)."""
    value = _number(answers.get("mem_free_kb"))
    free, avail, total = meminfo["MemFree"], meminfo["MemAvailable"], meminfo["MemTotal"]
    # Both figures move while you work; what must hold is that yours is MemFree, not MemAvailable.
    ok = _closer(value, free, avail) and abs(value - free) < total * 0.1
    expect(ok, expected=f"about {free} kB (MemFree now; MemAvailable is {avail} kB)",
           found=f"{value} kB" if value is not None else "nothing recorded",
           hint="read /proc/meminfo inside the sandbox; `free` prints the same figure in its 'free' column")


def test_mem_available(answers, meminfo):
    """You recorded MemAvailable, the figure that says how much can still be allocated."""
    value = _number(answers.get("mem_available_kb"))
    free, avail, total = meminfo["MemFree"], meminfo["MemAvailable"], meminfo["MemTotal"]
    ok = _closer(value, avail, free) and abs(value - avail) < total * 0.1
    expect(ok, expected=f"about {avail} kB (MemAvailable now; MemFree is {free} kB)",
           found=f"{value} kB" if value is not None else "nothing recorded",
           hint="MemAvailable counts free memory plus cache the kernel can reclaim; it is not MemFree")


def test_limit(answers, live):
    """You recorded the sandbox's real memory limit, read from its cgroup (not from free)."""
    text = live["limit"].strip()
    truth = None if text == "max" else int(text)
    raw = answers.get("limit_bytes")
    try:
        value = parse_size(raw) if raw else None
    except ValueError:
        value = None
    expect(value == truth, expected=f"{truth} bytes (the cgroup's limit)",
           found=f"{raw}" if raw else "nothing recorded",
           hint="`free` inside a container shows the host's memory; the limit lives under /sys/fs/cgroup")
