"""Part 2: page cache. The file must really be in the sandbox's page cache, and the timings must tell."""

from __future__ import annotations

import pytest
from lab53 import ANSWERS_HINT, answers_of, snapshot

from labcoat.testing import expect, human, judge_number, plausible

FILE = "/root/lab/big.bin"
SIZE = 64 * 1024 * 1024
# The sandbox's cache does not move by itself: 0 bytes over 70 s idle (docs/design.md, "Tolerances");
# each `answer` adds a page or two of its own file. What moves it is the learner's own reads and writes.
CACHE_DRIFT = 4 << 20

SCRIPT = f"""
echo @@; cat /root/answers/part2.txt 2>/dev/null
echo @@; stat -c %s {FILE} 2>/dev/null
echo @@; fincore --bytes --noheadings --output RES {FILE} 2>/dev/null
echo @@; cat /sys/fs/cgroup/memory/memory.stat 2>/dev/null || cat /sys/fs/cgroup/memory.stat
echo @@; cat /sys/fs/cgroup/memory/memory.usage_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.current
echo @@; if [ -f {FILE} ]; then s=$(date +%s%N); cat {FILE} >/dev/null; e=$(date +%s%N); echo $(( (e - s) / 1000 )); fi
"""


@pytest.fixture(scope="module")
def live(host):
    # The stat is read before the timed warm read, which must not change what is judged.
    return snapshot(host, SCRIPT, ["answers", "size", "resident", "stat", "usage", "warm_us"])


answers = answers_of("part2")


@pytest.fixture(scope="module")
def cache_now(live):
    stat = dict(line.split() for line in live["stat"].splitlines() if len(line.split()) == 2)
    # v1 says total_cache (hierarchical) / cache; v2 says file.
    for key in ("total_cache", "cache", "file"):
        if key in stat:
            return int(stat[key])
    return None


def _num(text, kind=float):
    try:
        return kind(str(text).split()[0])
    except (ValueError, IndexError):
        return None


def test_file_has_the_stated_size(live):
    """You created /root/lab/big.bin of exactly 64 MiB."""
    size = _num(live["size"], int)
    expect(size == SIZE, expected=f"{FILE}, {SIZE} bytes (64 MiB)",
           found=f"{size} bytes" if size is not None else "no such file",
           hint="dd can write a given number of 1 MiB blocks (bs=1M count=...)")


def test_file_is_in_the_page_cache(live):
    """The whole file is resident in the page cache now (fincore)."""
    resident = _num(live["resident"], int)
    expect(resident is not None and resident >= SIZE * 0.95,
           expected=f"at least 95% of {human(SIZE)} resident",
           found=f"{human(resident)} resident" if resident is not None else "no file to look at",
           hint="reading a file brings it into the cache; memory pressure (later parts) can push it out again: "
                "read it once more")


def test_cache_grew_by_the_file(answers, cache_now, live):
    """The cgroup's page cache grew by about the file's size when you read it cold."""
    before, after = _num(answers.get("cache_before_bytes"), int), _num(answers.get("cache_after_bytes"), int)
    if after is not None:
        plausible("cache_before_bytes", before, {"your after figure (the same reading twice)": after,
                                                 **({"the before figure in kB": before // 1024} if before else {})})
    if before is None or after is None:
        expect(False, expected="cache_before_bytes and cache_after_bytes recorded",
               found="missing", hint=ANSWERS_HINT)
    growth = after - before
    expect(0.8 * SIZE <= growth <= 1.25 * SIZE,
           expected=f"growth of about {human(SIZE)} between before and after the cold read",
           found=f"{human(growth)} ({before} -> {after})",
           hint="drop the file's pages first (dd iflag=nocache, or `lab reclaim` on the host), then read it")
    # Your "after" figure must be one the kernel really showed: the cache has not moved much since.
    usage = _num(live.get("usage"), int)
    judge_number(answers.get("cache_after_bytes"), cache_now, key="cache_after_bytes", unit="bytes",
                 what="cache_after_bytes as the cgroup's memory.stat showed it after the cold read (it has not "
                      "moved much since)",
                 tolerance=CACHE_DRIFT, stale_within=SIZE // 2,
                 mistakes={"your before figure (the reading before the cold read)": before,
                           "the cgroup's whole usage (usage_in_bytes / memory.current), not its cache": usage,
                           "the file's size alone, not the cgroup's cache": SIZE},
                 hint="read it from memory.stat in the sandbox's cgroup (total_cache on v1, file on v2)")


def test_warm_read_is_faster(answers, live):
    """Your cold and warm timings are ones this sandbox produces for this file (in seconds)."""
    cold, warm = _num(answers.get("cold_seconds")), _num(answers.get("warm_seconds"))
    if cold is not None and warm is not None:
        # Cold and warm swapped is not among them: where the VM's disk is itself cached by the
        # hypervisor, a cold read is only 0.7x to 4.5x as slow as a warm one (docs/design.md).
        plausible("cold_seconds", cold, {"milliseconds, not seconds": cold * 1000})
        plausible("warm_seconds", warm, {"milliseconds, not seconds": warm * 1000})
    if cold is None or warm is None or warm <= 0:
        expect(False, expected="cold_seconds and warm_seconds recorded (seconds, e.g. 0.123)",
               found=f"cold={answers.get('cold_seconds')} warm={answers.get('warm_seconds')}", hint=ANSWERS_HINT)
    expect(0.5 <= cold / warm <= 500, expected="a cold read no faster than half the warm one, and at most 500x slower",
           found=f"cold {cold:g} s, warm {warm:g} s ({cold / warm:.2f}x)",
           hint="a read is only cold if the file's pages were dropped from the cache just before it; "
                "both in seconds")
    # A warm read is a memory copy: the check times one now, and yours must be of the same order
    # (warm reads of this file varied 6x here on a busy host: 13 to 83 ms).
    measured = _num(live.get("warm_us"), int)
    if measured:
        now = measured / 1e6
        expect(now / 10 <= warm <= now * 10,
               expected="a warm read of the same order (within 10x) as the one the check times just now",
               found=f"{warm:g} s: " + ("far slower" if warm > now * 10 else "far faster")
               + " than a warm read of this file here",
               hint="time the read itself (date +%s%N before and after, or `time cat ...`), in seconds",
               truth=f"{now:.4f} s")
