"""Part 1: free vs available. Answers are compared with the live kernel, never with a stored key.

A failed check names the learner's mistake (another /proc/meminfo field, a unit slip, the
host's figure, the second-largest process) and never prints the live figure itself.
"""

from __future__ import annotations

import pytest
from lab53 import ANSWERS_HINT, answers_of, snapshot

from labcoat.testing import judge_choice, judge_number

# How far the truth moves (docs/design.md, "Tolerances"): on a busy shared 2-core host MemFree moved
# up to 1.47 GB within 60 s, MemAvailable up to 314 MB, and 603 MiB within 45 s while a 4 GiB VM
# ran beside the tests; a figure read a minute before `lab check` must still pass. The named
# mistakes (MemTotal, MemFree...) are rejected by nearness, whatever the tolerance.
MEMFREE_DRIFT_KB = 1536 * 1024
MEMAVAILABLE_DRIFT_KB = 1024 * 1024
# MemTotal read with `free -m` and multiplied by 1024 is up to 1024 kB off MemTotal: on a small host (a 4 GiB
# VM with under 1 GiB in use) it lies within the tolerance of MemAvailable and must still count as MemTotal.
# Only MemTotal gets the window: no right reading of MemFree or MemAvailable comes within 1 MiB of it.
FREE_M_ROUNDING_KB = 1024

SCRIPT = """
echo @@; cat /root/answers/part1.txt 2>/dev/null
echo @@; ps -eo pid=,comm=,rss=,vsz=
echo @@; cat /proc/meminfo
echo @@; cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max
echo @@; cat /sys/fs/cgroup/memory/memory.usage_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.current
"""


@pytest.fixture(scope="module")
def live(host):
    return snapshot(host, SCRIPT, ["answers", "ps", "meminfo", "limit", "usage"])


answers = answers_of("part1")


@pytest.fixture(scope="module")
def ranking(live):
    """(rss, pid, comm, vsz) of every process, largest RSS first."""
    rows = []
    for line in live["ps"].splitlines():
        head, rss, vsz = line.rsplit(None, 2)
        pid, comm = head.split(None, 1)
        if comm in ("ps", "sh", "cat"):
            continue  # the check's own snapshot
        rows.append((int(rss), int(pid), comm, int(vsz)))
    return sorted(rows, reverse=True)


@pytest.fixture(scope="module")
def meminfo(live):
    return {line.split(":")[0]: int(line.split()[1]) for line in live["meminfo"].splitlines() if line.split()[1:]}


def _process_mistakes(ranking, field):
    """Plausible wrong picks: the runner-up by RSS, the largest by virtual size, PID 1 (docker-init)."""
    index = 1 if field == "pid" else 2
    by_vsz = max(ranking, key=lambda r: r[3])
    mistakes = {"the second-largest process by RSS": ranking[1][index] if len(ranking) > 1 else None}
    if by_vsz[1] != ranking[0][1]:
        mistakes["the largest process by virtual size (VSZ), not by RSS"] = by_vsz[index]
    mistakes["the smallest of the three services by RSS"] = min(ranking[:3])[index] if len(ranking) > 2 else None
    return mistakes


def test_largest_process_pid(answers, ranking):
    """You recorded the PID of the process using the most memory (by RSS)."""
    judge_choice(answers.get("largest_pid"), ranking[0][1], key="largest_pid",
                 what="the PID of the process with the largest resident set size (RSS) right now",
                 mistakes=_process_mistakes(ranking, "pid"),
                 hint="RSS is what a process really holds in RAM; `ps` can sort on any column (see `man ps`, --sort)."
                 if answers.get("largest_pid") else ANSWERS_HINT)


def test_largest_process_name(answers, ranking):
    """You recorded the name (command) of that process."""
    judge_choice(answers.get("largest_name"), ranking[0][2], key="largest_name",
                 what="the command name of the largest process by RSS",
                 mistakes=_process_mistakes(ranking, "comm"), hint="the comm column of ps, or /proc/PID/comm")


def test_mem_free(answers, meminfo):
    """You recorded MemFree (in kB, as /proc/meminfo shows it)."""
    judge_number(answers.get("mem_free_kb"), meminfo["MemFree"], key="mem_free_kb", unit="kB",
                 what="MemFree as /proc/meminfo shows it, in kB, read shortly before the check",
                 tolerance=MEMFREE_DRIFT_KB, stale_within=4 * MEMFREE_DRIFT_KB,
                 mistakes={"MemAvailable, not MemFree": meminfo["MemAvailable"],
                           "MemTotal, not MemFree": meminfo["MemTotal"],
                           "Cached (the page cache), not MemFree": meminfo.get("Cached")},
                 copied_within={"MemTotal, not MemFree": FREE_M_ROUNDING_KB},
                 hint="read /proc/meminfo inside the sandbox; `free -k` prints the same figure in its 'free' column")


def test_mem_available(answers, meminfo):
    """You recorded MemAvailable, the figure that says how much can still be allocated."""
    judge_number(answers.get("mem_available_kb"), meminfo["MemAvailable"], key="mem_available_kb", unit="kB",
                 what="MemAvailable as /proc/meminfo shows it, in kB, read shortly before the check",
                 tolerance=MEMAVAILABLE_DRIFT_KB, stale_within=4 * MEMAVAILABLE_DRIFT_KB,
                 mistakes={"MemFree, not MemAvailable": meminfo["MemFree"],
                           "MemTotal (all of the host's RAM), not MemAvailable": meminfo["MemTotal"],
                           "MemFree + Cached (a hand-made estimate), not the kernel's MemAvailable":
                               meminfo["MemFree"] + meminfo.get("Cached", 0)},
                 copied_within={"MemTotal (all of the host's RAM), not MemAvailable": FREE_M_ROUNDING_KB},
                 hint="MemAvailable counts free memory plus cache the kernel can reclaim; it is neither MemFree "
                      "nor MemTotal")


def test_limit(answers, live, meminfo):
    """You recorded the sandbox's real memory limit, read from its cgroup (not from free)."""
    text = live["limit"].strip()
    truth = None if text == "max" else int(text)
    usage = live.get("usage", "").strip()
    judge_number(answers.get("limit_bytes"), truth, key="limit_bytes", unit="bytes",
                 what="the memory limit of the sandbox's cgroup, in bytes",
                 mistakes={"the host's total memory (what `free` shows inside a container)": meminfo["MemTotal"] * 1024,
                           "the host's total memory in kB (MemTotal)": meminfo["MemTotal"],
                           "what the sandbox uses now (usage), not its limit": int(usage) if usage.isdigit() else None},
                 hint="`free` inside a container shows the host's memory; the limit lives under /sys/fs/cgroup")
