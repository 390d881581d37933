"""The one attempt pipeline (runner/attempt.py) on the shared fake backend: no Docker.

The scenario runner is replaced by a recorder: what is tested is the order of script and
provocation, the environment the script sees, and that the record is kept where the
checks read it; the scenarios themselves are tested in test_scenario_runner.py.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeBackend

from labcoat.backends.base import CommandResult
from labcoat.content.catalog import Catalog
from labcoat.runner import attempt as pipeline
from labcoat.runner.records import load_record
from labcoat.runner.session import ANSWERS_DIR, start_lab

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def session(catalog: Catalog, lab: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr("labcoat.runner.steps.prepare_part", lambda catalog, sandbox, part: None)
    fake = FakeBackend()
    session, _ = start_lab(catalog, fake, lab)
    return session


class Record:
    def __init__(self, status: str) -> None:
        self.status = status

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status}


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """ScenarioRunner replaced: records (scenario id, machine id, on_event) and the order of events."""
    seen: dict[str, Any] = {"runners": [], "log": [], "release": threading.Event(), "wait": False}

    class Runner:
        def __init__(self, scenario: Any, backend: Any, machine: Any, seed: int = 0, on_event: Any = None,
                     **kw: Any) -> None:
            seen["runners"].append((scenario.id, machine.id, seed, on_event))
            self.record = Record("unfinished")

        def run(self) -> Record:
            seen["log"].append("provocation starts")
            if seen["wait"]:  # a provocation "during" the script: it is still running when the script runs
                assert seen["release"].wait(5)
            seen["log"].append("provocation ends")
            return Record("passed")

    monkeypatch.setattr("labcoat.runner.scenario.ScenarioRunner", Runner)
    return seen


def _part(lab: Any, **changes: Any) -> Any:
    part = next(p for p in lab.parts if p.provoke)
    return part.model_copy(update=changes)


def test_without_a_provocation_the_script_runs_in_the_parts_sandbox_from_root(catalog, lab, session, runs) -> None:
    part = _part(lab, provoke=None)
    fake = session.main.backend
    fake.answer = lambda machine, argv: CommandResult(3, "out", "")
    ran = pipeline.attempt(catalog, session, part, "echo hi", {"LAB_SEED": "5"})
    assert ran.exit_status == 3 and runs["runners"] == []
    call = fake.calls[-1]
    assert call.machine == session.for_part(part.id).machine.id
    assert call.argv[:2] == ["/bin/sh", "-c"] and call.argv[2].startswith("cd /root && bash -c ")
    assert call.env == {"LAB_SEED": "5", "LAB_SANDBOX": session.main.machine.name}


def test_a_provocation_after_the_script_runs_once_it_ended_and_its_record_is_kept(catalog, lab, session,
                                                                                runs) -> None:
    part = _part(lab, provoke_when="after")
    sandbox = session.for_part(part.id)
    sandbox.backend.answer = lambda machine, argv: (runs["log"].append("script"), CommandResult(0, "", ""))[1]
    pipeline.attempt(catalog, session, part, "true", {})
    assert runs["log"] == ["script", "provocation starts", "provocation ends"]
    assert [(s, m) for s, m, _, _ in runs["runners"]] == [(part.provoke, sandbox.machine.id)]
    assert load_record(sandbox.machine.id, part.provoke) == {"status": "passed"}


def test_a_provocation_during_the_script_runs_while_it_runs(catalog, lab, session, runs) -> None:
    part = _part(lab, provoke_when="during")
    runs["wait"] = True

    def script() -> CommandResult:
        runs["log"].append("script")
        runs["release"].set()
        return CommandResult(0, "", "")

    pipeline.attempt(catalog, session, part, "ignored", {}, run=script)  # `run`: grading's contained runner
    assert runs["log"][0] == "provocation starts" and "script" in runs["log"]
    assert load_record(session.for_part(part.id).machine.id, part.provoke) == {"status": "passed"}


def test_provoke_false_runs_the_script_alone(catalog, lab, session, runs) -> None:
    part = _part(lab)
    pipeline.attempt(catalog, session, part, "true", {}, provoke=False)
    assert runs["runners"] == [] and load_record(session.for_part(part.id).machine.id, part.provoke) is None


def test_provoke_part_runs_the_scenario_now_and_keeps_its_record(catalog, lab, session, runs) -> None:
    part = _part(lab)
    sandbox = session.for_part(part.id)
    events = []
    record = pipeline.provoke_part(catalog, sandbox, part, on_event=lambda k, d: events.append(k))
    assert record.status == "passed"
    assert runs["runners"][0][1:3] == (sandbox.machine.id, sandbox.seed) and runs["runners"][0][3] is not None
    assert load_record(sandbox.machine.id, part.provoke) == {"status": "passed"}
    with pytest.raises(ValueError):
        pipeline.provoke_part(catalog, sandbox, _part(lab, provoke=None))


def test_a_host_part_runs_on_the_host_with_the_backends_environment(catalog, lab, session) -> None:
    class Engine(FakeBackend):
        def host_env(self) -> dict[str, str]:
            return {"DOCKER_HOST": "unix:///fake.sock"}

    part = _part(lab, runs_on="host")
    sandbox = session.for_part(part.id)
    ran = pipeline.run_part_script(Engine(), sandbox, part, 'echo "$DOCKER_HOST $LAB_X"; exit 4', {"LAB_X": "x"})
    assert (ran.exit_status, ran.stdout) == (4, "unix:///fake.sock x\n")


def test_clear_answers_removes_the_parts_answers_file(lab, session) -> None:
    part = _part(lab)
    machine = session.for_part(part.id).machine
    pipeline.clear_answers(session.main.backend, machine, part)
    assert session.main.backend.calls[-1].argv == ["rm", "-f", f"{ANSWERS_DIR}/{part.id}.txt"]
