"""Part 2: page cache. The file must really be in the sandbox's page cache, and the timings must tell."""

from __future__ import annotations

import pytest
from lab53 import ANSWERS_HINT, answers_of, snapshot

from labcoat.testing import expect, human

FILE = "/root/lab/big.bin"
SIZE = 64 * 1024 * 1024

SCRIPT = f"""
echo @@; cat /root/answers/part2.txt 2>/dev/null
echo @@; stat -c %s {FILE} 2>/dev/null
echo @@; fincore --bytes --noheadings --output RES {FILE} 2>/dev/null
echo @@; cat /sys/fs/cgroup/memory/memory.stat 2>/dev/null || cat /sys/fs/cgroup/memory.stat
echo @@; if [ -f {FILE} ]; then s=$(date +%s%N); cat {FILE} >/dev/null; e=$(date +%s%N); echo $(( (e - s) / 1000 )); fi
"""


@pytest.fixture(scope="module")
def live(host):
    # The stat is read before the timed warm read, which must not change what is judged.
    return snapshot(host, SCRIPT, ["answers", "size", "resident", "stat", "warm_us"])


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


def test_cache_grew_by_the_file(answers, cache_now):
    """The cgroup's page cache grew by about the file's size when you read it cold."""
    before, after = _num(answers.get("cache_before_bytes"), int), _num(answers.get("cache_after_bytes"), int)
    if before is None or after is None:
        expect(False, expected="cache_before_bytes and cache_after_bytes recorded",
               found="missing", hint=ANSWERS_HINT)
    growth = after - before
    expect(0.8 * SIZE <= growth <= 1.25 * SIZE,
           expected=f"growth of about {human(SIZE)} between before and after the cold read",
           found=f"{human(growth)} ({before} -> {after})",
           hint="drop the file's pages first (dd iflag=nocache, or `lab reclaim` on the host), then read it")
    # Your "after" figure must be one the kernel really showed: the cache has not moved much since.
    tolerance = max(16 << 20, 0.1 * cache_now)
    expect(abs(after - cache_now) <= tolerance,
           expected=f"cache_after_bytes close to the cgroup's cache now ({cache_now} bytes)",
           found=f"{after} bytes", hint="read it from memory.stat in the sandbox's cgroup (file / cache)")


def test_warm_read_is_faster(answers, live):
    """Your warm read was clearly faster than your cold read, and both are believable."""
    cold, warm = _num(answers.get("cold_seconds")), _num(answers.get("warm_seconds"))
    if cold is None or warm is None or warm <= 0:
        expect(False, expected="cold_seconds and warm_seconds recorded (seconds, e.g. 0.123)",
               found=f"cold={answers.get('cold_seconds')} warm={answers.get('warm_seconds')}", hint=ANSWERS_HINT)
    expect(1.5 <= cold / warm <= 500, expected="the cold read 1.5x to 500x slower than the warm one",
           found=f"cold {cold:g} s, warm {warm:g} s ({cold / warm:.2f}x)",
           hint="a read is only cold if the file's pages were dropped from the cache just before it")
    # A warm read is a memory copy: the check times one now, and yours must be of the same order.
    measured = _num(live.get("warm_us"), int)
    if measured:
        now = measured / 1e6
        expect(now / 5 <= warm <= now * 5, expected=f"a warm read of about {now:.3f} s (timed by the check just now)",
               found=f"{warm:g} s", hint="time the read itself (date +%s%N before and after, or `time cat ...`)")
