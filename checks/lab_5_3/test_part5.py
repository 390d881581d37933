"""Part 5: a container of your own with a memory limit, its cgroup files, and the proof of an OOM kill."""

from __future__ import annotations

import pytest
from lab53 import answers_of, snapshot

from labcoat.testing import expect, judge_choice, judge_number, parse_size

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


def test_recorded_limit_and_usage(answers, cgroup, sandbox):
    """You read the limit and the usage from that container's cgroup files."""
    if cgroup is None:
        expect(False, expected=f"{NAME} running", found="not running", hint="start it again (`lab show part5`)")
    # The usage of an idle container moves by a few pages; the learner's own `docker exec`s add a little.
    judge_number(answers.get("limit_bytes"), cgroup.limit, key="limit_bytes", unit="bytes",
                 what="the limit of YOUR container's cgroup (memory.limit_in_bytes / memory.max), in bytes",
                 mistakes={"the lab sandbox's limit, not your container's": sandbox.memory_limit,
                           "its usage, not its limit": cgroup.usage,
                           "the limit in MiB, not bytes": LIMIT >> 20},
                 hint="docker exec into YOUR container and read memory.limit_in_bytes (v1) or memory.max (v2)")
    judge_number(answers.get("usage_bytes"), cgroup.usage, key="usage_bytes", unit="bytes",
                 what="the usage of YOUR container's cgroup (memory.usage_in_bytes / memory.current), in bytes",
                 tolerance=max(8 << 20, cgroup.usage or 0),
                 mistakes={"its limit, not its usage": cgroup.limit},
                 hint="usage is in the same folder as the limit")


def test_oom_kill_evidence(answers, cgroup, container):
    """The container saw an OOM kill, and you recorded the counter that proves it."""
    if cgroup is None or container is None:
        expect(False, expected=f"{NAME} running", found="not running", hint="start it again (`lab show part5`)")
    kills = cgroup.oom_kill or 0
    expect(kills >= 1, expected="at least one OOM kill in your container", found="its cgroup counts none",
           hint="run something that needs more than 96 MiB inside the container (hog 200)")
    judge_number(answers.get("oom_kill"), kills, key="oom_kill", what="the oom_kill counter of your container's cgroup",
                 mistakes={"the count before the OOM": 0}, slips=False,
                 hint="read memory.oom_control (v1) or memory.events (v2) inside YOUR container")
    flag = str(container["State"].get("OOMKilled")).lower()
    judge_choice(str(answers.get("oomkilled_flag", "")).lower(), flag, key="oomkilled_flag",
                 what="what docker inspect says about OOMKilled right now",
                 mistakes={"what the counter proves, not what Docker says": "true" if flag == "false" else None,
                           "the opposite of what Docker says": "false" if flag == "true" else None},
                 hint="docker inspect -f '{{.State.OOMKilled}}' lab53-part5 - and compare it with the counter")
