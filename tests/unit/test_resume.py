"""After an engine restart: what `lab check` says, what `lab start` re-prepares, where answers live (no Docker)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labcoat.backends.base import Machine
from labcoat.content.catalog import Catalog
from labcoat.errors import ENVIRONMENT
from labcoat.runner.session import (
    LabSession,
    Sandbox,
    SandboxesStopped,
    answers_folder,
    current_session,
    forget_answers,
    orphaned_answers,
    owner,
    restarts_processes,
)

ROOT = Path(__file__).resolve().parents[2]


class FakeBackend:
    name = "docker"

    def __init__(self, machines: list[Machine]) -> None:
        self.machines = machines

    def find(self, labels: dict[str, str], *, include_stopped: bool = True) -> list[Machine]:
        return [m for m in self.machines if all(not v and k in m.labels or m.labels.get(k) == v
                                                for k, v in labels.items())]

    def inspect(self, machine: Machine) -> dict:
        return {"State": {"Running": False, "ExitCode": 143, "FinishedAt": "2026-12-01T21:48:03.1Z"}}


def machine(mid: str, part: str = "", status: str = "exited", session: str = "s1") -> Machine:
    labels = {"labcoat.managed": "1", "labcoat.owner": owner(), "labcoat.kind": "lab", "labcoat.lab": "5.3",
              "labcoat.seed": "42", "labcoat.session": session}
    if part:
        labels["labcoat.part"] = part
    return Machine(id=mid * 8, name=f"sb-{mid}", labels=labels, status=status)


def test_check_on_stopped_sandboxes_says_what_happened_and_what_to_run() -> None:
    machines = [machine("a"), machine("b", "part3"), machine("c", "part4")]
    backend = FakeBackend(machines)
    for m in machines:
        Sandbox(backend, m, "5.3").mark_ready({"lab": "5.3"})  # type: ignore[arg-type]
    with pytest.raises(SandboxesStopped) as info:
        current_session(backend)  # type: ignore[arg-type]
    error = info.value
    assert error.exit_code == ENVIRONMENT == 4  # README's table: not the learner's fault
    assert "the Docker engine restarted" in error.message and "3 sandbox(es) of lab 5.3 are stopped" in error.message
    assert "since 21:48 UTC (exit 143)" in error.message
    assert error.hint == "run `lab start 5.3` to resume them — your answers are kept"


def test_stopped_sandboxes_that_never_finished_preparing_are_not_resumable() -> None:
    backend = FakeBackend([machine("a")])  # no "ready" file: an interrupted start, then a restart
    with pytest.raises(Exception) as info:
        current_session(backend)  # type: ignore[arg-type]
    assert not isinstance(info.value, SandboxesStopped) and "no lab is running" in str(info.value)


def test_only_preparations_that_start_processes_run_again_on_resume() -> None:
    catalog = Catalog.load(ROOT)
    lab = catalog.lab("5.3")
    again = {p.id: restarts_processes(catalog, p) for p in lab.parts}
    # Part 1 and 3 start services (hogs), which died with the container; part 2's preparation is a
    # clean slate that would delete the learner's file; part 4's only writes a file that survived.
    assert again["part1"] and again["part3"]
    assert not again["part2"] and not again["part4"] and not again["part5"]


def test_answers_folders_follow_the_session_and_an_orphan_is_found(tmp_path: Path) -> None:
    folder = answers_folder("s9", "")
    folder.mkdir(parents=True)
    (folder.parent / "session.json").write_text(json.dumps({"lab": "5.3", "seed": "7", "session": "s9",
                                                            "owner": owner()}))
    (folder / "part1.txt").write_text("mem_free: 1\n")
    # Its containers still exist: nothing to restore.
    assert orphaned_answers(FakeBackend([machine("x", session="s9")]), "5.3") is None  # type: ignore[arg-type]
    # Removed behind labcoat's back: the session comes back with its seed.
    found = orphaned_answers(FakeBackend([]), "5.3")  # type: ignore[arg-type]
    assert found is not None and found["seed"] == "7" and found["session"] == "s9"
    assert orphaned_answers(FakeBackend([]), "other-lab") is None  # type: ignore[arg-type]
    # labcoat's own removal (lab stop) takes the answers with it.
    forget_answers("s9", "")
    assert not folder.parent.exists()


def test_an_orphan_without_answers_is_dropped_not_restored() -> None:
    folder = answers_folder("s8", "part3")
    folder.mkdir(parents=True)
    (folder.parent / "session.json").write_text(json.dumps({"lab": "5.3", "seed": "7", "session": "s8",
                                                            "owner": owner()}))
    assert orphaned_answers(FakeBackend([]), "5.3") is None  # type: ignore[arg-type]
    assert not folder.parent.exists()


def test_a_session_knows_when_it_was_resumed() -> None:
    session = LabSession("5.3", Sandbox(FakeBackend([]), machine("a", status="running"), "5.3"))  # type: ignore[arg-type]
    assert session.resumed is None and session.restored is False
