"""Part 5: a container of your own with a memory limit, its cgroup files, and the proof of an OOM kill."""

from __future__ import annotations

import pytest
from lab53 import ANSWERS_HINT, answers_of, snapshot

from labcoat.testing import expect, parse_size

NAME = "lab53-part5"
LIMIT = 96 * 1024 * 1024


@pytest.fixture(scope="module")
def live(host):
    return snapshot(host, "echo @@; cat /root/answers/part5.txt 2>/dev/null", ["answers"])


answers = answers_of("part5")


@pytest.fixture(scope="module")
def container(sandbox):
    return sandbox.container(NAME)


@pytest.fixture(scope="module")
def cgroup(sandbox, container):
    return sandbox.container_cgroup(NAME) if container else None


def _int(text):
    try:
        return parse_size(str(text).split()[0])
    except (ValueError, IndexError):
        return None


def test_container_has_the_stated_limit(container):
    """Container lab53-part5 runs with --memory 96m, and memory+swap equal to it."""
    if container is None:
        expect(False, expected=f"a running container named {NAME}", found="no such container",
               hint="docker run -d --name lab53-part5 ... (see `lab show part5`)")
    host = container["HostConfig"]
    found = f"Memory={host.get('Memory')} MemorySwap={host.get('MemorySwap')} running={container['State']['Running']}"
    expect(host.get("Memory") == LIMIT and host.get("MemorySwap") == LIMIT and container["State"]["Running"],
           expected=f"Memory={LIMIT} MemorySwap={LIMIT} running=True", found=found,
           hint="without --memory-swap equal to --memory, Docker allows twice the limit where the host has swap")


def test_recorded_limit_and_usage(answers, cgroup):
    """You read the limit and the usage from that container's cgroup files."""
    if cgroup is None:
        expect(False, expected=f"{NAME} running", found="not running", hint="start it again (`lab show part5`)")
    limit = _int(answers.get("limit_bytes"))
    expect(limit == cgroup.limit, expected=f"limit_bytes {cgroup.limit} (the container's cgroup)",
           found=str(answers.get("limit_bytes", f"nothing ({ANSWERS_HINT})")),
           hint="docker exec into YOUR container and read memory.limit_in_bytes (v1) or memory.max (v2)")
    usage = _int(answers.get("usage_bytes"))
    expect(usage is not None and 0 < usage <= cgroup.limit and abs(usage - cgroup.usage) <= max(8 << 20, cgroup.usage),
           expected=f"usage_bytes near {cgroup.usage} (memory.usage_in_bytes / memory.current now)",
           found=str(answers.get("usage_bytes", "nothing")), hint="usage is in the same folder as the limit")


def test_oom_kill_evidence(answers, cgroup, container):
    """The container saw an OOM kill, and you recorded the counter that proves it."""
    if cgroup is None or container is None:
        expect(False, expected=f"{NAME} running", found="not running", hint="start it again (`lab show part5`)")
    kills = cgroup.oom_kill or 0
    recorded = _int(answers.get("oom_kill"))
    expect(kills >= 1 and recorded == kills, expected=f"oom_kill {kills} recorded, and at least 1",
           found=f"recorded {answers.get('oom_kill', 'nothing')}, the kernel counts {kills}",
           hint="run something that needs more than 96 MiB inside the container (hog 200), then read "
                "memory.oom_control (v1) or memory.events (v2)")
    flag = str(container["State"].get("OOMKilled")).lower()
    said = str(answers.get("oomkilled_flag", "")).lower()
    expect(said == flag, expected=f"oomkilled_flag {flag} (what docker inspect says right now)",
           found=said or "nothing recorded",
           hint="docker inspect -f '{{.State.OOMKilled}}' lab53-part5 - and compare it with the counter")
