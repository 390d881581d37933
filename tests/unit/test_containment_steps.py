"""Grading's containment around a student's script, as named steps, on the shared fake backend: no Docker.

The host side (the sandbox's processes read from its cgroup, the kill) is replaced: what is
tested is the order of the steps and what each says when it finds a problem.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fakes import FakeBackend

from labcoat.backends.base import MachineSpec
from labcoat.content.catalog import Catalog
from labcoat.errors import InfrastructureFailure
from labcoat.grading import containment
from labcoat.grading.containment import AFTER_SCRIPT_STEPS, BEFORE_SCRIPT, Guard

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def part() -> Any:
    return Catalog.load(ROOT).lab("5.3").parts[0]


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The host side played: the sandbox runs (or not), its processes, what settle stopped."""
    state: dict[str, Any] = {"gone": None, "killed": 0}
    monkeypatch.setattr(containment, "_stopped", lambda backend, machine: state["gone"])
    monkeypatch.setattr(containment, "sandbox_processes", lambda backend, machine: {1: 100})
    monkeypatch.setattr(containment, "settle", lambda backend, machine, baseline, labels, health=True:
                        (state["killed"], state["gone"]))
    return state


def test_the_steps_are_named_and_ordered() -> None:
    assert [n for n, _ in BEFORE_SCRIPT] == ["look at the system files (meanwhile)", "the sandbox runs commands",
                                             "no answers recorded yet", "note the processes running",
                                             "note the system files"]
    assert [n for n, _ in AFTER_SCRIPT_STEPS][0] == "stop what the script left running"
    assert [n for n, _ in AFTER_SCRIPT_STEPS][-1] == "the system files are the image's"


def test_a_clean_script_passes_every_step(part, host) -> None:
    fake = FakeBackend()
    fake.changes = ["/root/answers", "/tmp/x"]  # outside the protected folders: not a problem
    m = fake.start(MachineSpec(image="x", memory=1), {})
    guard = Guard(fake, m, part, {})
    guard.before()
    assert guard.baseline == {1: 100} and guard.system_before == set()
    assert ["rm", "-f", f"/root/answers/{part.id}.txt"] in fake.argvs(m)
    host["killed"] = 2
    assert guard.after() is None and guard.killed == 2


def test_a_script_that_changed_the_systems_tools_cannot_be_judged(part, host) -> None:
    fake = FakeBackend()
    m = fake.start(MachineSpec(image="x", memory=1), {})
    guard = Guard(fake, m, part, {})
    guard.before()
    fake.changes = ["/usr", "/usr/bin", "/usr/bin/ps"]
    why = guard.after()
    assert why is not None and "/usr/bin/ps" in why and "/usr, " not in why and why.startswith(guard.file)


def test_a_sandbox_the_script_broke_is_said_so_and_one_broken_before_is_infrastructure(part, host) -> None:
    fake = FakeBackend()
    m = fake.start(MachineSpec(image="x", memory=1), {})
    guard = Guard(fake, m, part, {})
    guard.before()
    host["gone"] = "the container stopped (exit code 137)"
    assert guard.after() == f"{guard.file} left its sandbox unusable: the container stopped (exit code 137)"
    with pytest.raises(InfrastructureFailure, match="not usable before its script ran"):
        Guard(fake, m, part, {}).before()
