"""Session, checking, selftest and grading orchestration on the shared fake backend: no Docker.

What is tested is the order and the bookkeeping (labels, answers folders, readiness,
clean-up on failure, resume after an engine restart, which verdict each selftest stage
expects), not the kernel: preparation and the checks themselves are replaced where a
test is about what calls them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fakes import FakeBackend

from labcoat.backends.base import CommandResult, Machine
from labcoat.checking.run import CheckResult, PartResult
from labcoat.content.catalog import Catalog
from labcoat.errors import EnvironmentProblem, NotStarted
from labcoat.runner import session as sessions
from labcoat.runner.session import (
    ANSWERS_DIR,
    L_OWNER,
    L_PART,
    L_SESSION,
    SandboxesStopped,
    current_session,
    owner,
    start_lab,
)

ROOT = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------- session


def test_start_lab_starts_labels_mounts_prepares_and_marks_ready(catalog, lab, prepared) -> None:
    fake = FakeBackend()
    session, new = start_lab(catalog, fake, lab)
    own = [p.id for p in lab.parts if p.sandbox]
    assert new and sorted(session.parts) == sorted(own)
    assert len(fake.machines) == 1 + len(own)
    for sb in session.all:
        labels = sb.machine.labels
        assert labels[L_OWNER] == owner() and labels[L_SESSION] == session.main.session_id
        assert labels.get(L_PART, "") == sb.part_id
        assert sb.is_ready
        mounts = fake.specs[sb.machine.id].mounts
        assert list(mounts.values()) == [ANSWERS_DIR]  # the answers live on the host
        assert Path(next(iter(mounts))).is_dir()
        assert fake.specs[sb.machine.id].image.startswith("fake/")
    # every part prepared exactly once, in the sandbox where it happens
    assert sorted(p for _, p in prepared) == sorted(p.id for p in lab.parts)
    for machine_id, part_id in prepared:
        assert machine_id == session.for_part(part_id).machine.id


def test_a_second_start_reuses_the_running_session(catalog, lab, prepared) -> None:
    fake = FakeBackend()
    first, _ = start_lab(catalog, fake, lab)
    again, new = start_lab(catalog, fake, lab)
    assert not new and again.main.machine.id == first.main.machine.id
    assert fake.started == len(first.all)


def test_a_failed_start_removes_everything_it_started(catalog, lab, prepared) -> None:
    fake = FakeBackend()
    fake.fail_start_at = 1  # the second sandbox cannot start (the first one already did)
    with pytest.raises(EnvironmentProblem):
        start_lab(catalog, fake, lab)
    assert fake.machines == {}
    assert fake.removed  # the one that had started went


def test_an_interrupted_preparation_removes_everything(catalog, lab, monkeypatch) -> None:
    def interrupted(catalog: Any, sandbox: Any, part: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("labcoat.runner.steps.prepare_part", interrupted)
    fake = FakeBackend()
    with pytest.raises(KeyboardInterrupt):
        start_lab(catalog, fake, lab)
    assert fake.machines == {}
    with pytest.raises(NotStarted):
        current_session(fake, lab.id)


def test_an_engine_restart_resumes_the_same_sandboxes(catalog, lab, prepared) -> None:
    fake = FakeBackend()
    first, _ = start_lab(catalog, fake, lab)
    fake.stop_all()
    with pytest.raises(SandboxesStopped) as stopped:
        current_session(fake, lab.id)
    assert "answers are kept" in (stopped.value.hint or "")
    prepared.clear()
    again, new = start_lab(catalog, fake, lab)
    assert not new
    assert sorted(fake.resumed) == sorted(sb.machine.id for sb in first.all)
    assert fake.started == len(first.all)  # nothing new started
    assert again.resumed is not None and set(again.resumed) == {p for _, p in prepared}
    assert current_session(fake, lab.id).main.machine.id == first.main.machine.id


def test_a_backend_without_containers_mounts_nothing_and_never_resumes(catalog, lab, prepared) -> None:
    fake = FakeBackend(is_container=False)
    first, _ = start_lab(catalog, fake, lab)
    assert all(not spec.mounts for spec in fake.specs.values())
    assert all(spec.image == "" for spec in fake.specs.values())
    fake.stop_all()
    again, new = start_lab(catalog, fake, lab)
    assert new and not fake.resumed  # started afresh: only containers can be resumed
    assert {sb.machine.id for sb in first.all}.isdisjoint(fake.machines)


def test_remove_learner_containers_asks_the_backend(lab) -> None:
    asked: list[list[str]] = []

    class Engine(FakeBackend):
        def remove_named(self, names: Any) -> list[str]:
            asked.append(list(names))
            return list(names)[:1]

    expected = [n for p in lab.parts for n in p.learner_containers]
    assert sessions.remove_learner_containers(Engine(), lab) == expected[:1]
    assert asked == [expected]


# ----------------------------------------------------------------------------- checking


@pytest.mark.parametrize(("status", "verdict"), [(0, "passed"), (1, "failed")])
def test_run_checks_judges_through_the_backend_and_shares_the_points(content_tree, prepared, status, verdict,
                                                                      monkeypatch) -> None:
    """The tiny lab's checks run `true` in the sandbox: the fake's exit status is the verdict; points as declared."""
    import sys

    from labcoat.checking.run import run_checks

    # In-process pytest keeps a check module by its name: each parametrized run has its own content root.
    monkeypatch.delitem(sys.modules, "test_tiny_part1", raising=False)

    catalog = Catalog.load(content_tree.root)
    lab = catalog.lab("1.1")
    fake = FakeBackend()
    session, _ = start_lab(catalog, fake, lab)
    fake.answer = lambda machine, argv: CommandResult(status, "", "")
    before = len(fake.calls)
    [result] = run_checks(catalog, session, lab, lab.parts)
    assert len(fake.calls) > before  # the checks reached the sandbox through the backend, nothing else
    assert all(c.machine == session.main.machine.id for c in fake.calls[before:])
    assert [(c.check, c.status) for c in result.checks] == [("test_one", verdict), ("test_two", verdict)]
    assert [c.max_points for c in result.checks] == [4.0, 6.0]  # check_points, then the rest shared
    assert sum(c.points for c in result.checks) == (10.0 if status == 0 else 0.0)
    assert result.status == verdict


# ----------------------------------------------------------------------------- selftest


def _selftest(catalog: Any, lab: Any, monkeypatch: pytest.MonkeyPatch, passes_after: set[str]) -> tuple[Any, Any]:
    """run_selftest with a fake backend, attempts recorded and the checks passing after these scripts' stages."""
    from labcoat.grading import selftest

    fake = FakeBackend()
    last: dict[str, str] = {}

    def attempt(catalog: Any, session: Any, part: Any, script: str, env: Any, **kw: Any) -> CommandResult:
        last[part.id] = script
        return CommandResult(0, "", "")

    def run_checks(catalog: Any, session: Any, lab: Any, parts: list[Any]) -> list[PartResult]:
        part = parts[0]
        ok = last.get(part.id) in passes_after
        result = PartResult(part.id, part.title)
        result.checks.append(CheckResult(part.id, "test_x", "x", "passed" if ok else "failed", 1.0 if ok else 0.0, 1.0))
        return [result]

    monkeypatch.setattr(selftest, "attempt", attempt)
    monkeypatch.setattr("labcoat.checking.run.run_checks", run_checks)
    monkeypatch.setattr(selftest, "run_script", lambda backend, machine, script, **kw: CommandResult(0, "", ""))
    # each decoy/solution attempt starts from the part's prepared state
    return fake, selftest.run_selftest(catalog, fake, lab, mutate=False)


def test_selftest_expects_fail_fresh_and_for_decoys_pass_for_the_solution_twice(catalog, lab, prepared,
                                                                              monkeypatch) -> None:
    solutions = {catalog.lab_file(lab.id, p.solution).read_text() for p in lab.parts}
    fake, report = _selftest(catalog, lab, monkeypatch, passes_after=solutions)
    graded = [p for p in lab.parts if not p.follow_along]
    for part in graded:
        rows = [(r.stage, r.expected, r.got) for r in report.rows if r.part == part.id]
        assert rows[0] == ("fresh sandbox", "fail", "fail")
        assert [r[0] for r in rows[1:-2]] == [f"decoy {d.name}" for d in part.decoys]
        assert rows[-2:] == [("solution", "pass", "pass"), ("solution again", "pass", "pass")]
    assert all(r.ok for r in report.rows)
    assert fake.machines == {} and len(fake.removed) == fake.started  # selftest sandboxes never outlive it


def test_selftest_reports_a_decoy_that_passes(catalog, lab, prepared, monkeypatch) -> None:
    part = next(p for p in lab.parts if p.decoys and not p.follow_along)
    decoy = catalog.lab_file(lab.id, part.decoys[0].script).read_text()
    solutions = {catalog.lab_file(lab.id, p.solution).read_text() for p in lab.parts}
    _, report = _selftest(catalog, lab, monkeypatch, passes_after=solutions | {decoy})
    bad = [r for r in report.rows if not r.ok]
    assert [(r.part, r.stage) for r in bad if r.part == part.id] == [(part.id, f"decoy {part.decoys[0].name}")]
    assert bad[0].detail  # says in words what the decoy's pass means


def test_selftest_removes_its_sandboxes_when_a_check_breaks(catalog, lab, prepared, monkeypatch) -> None:
    from labcoat.grading import selftest

    fake = FakeBackend()

    def broken(*args: Any, **kw: Any) -> Any:
        raise RuntimeError("a check blew up")

    monkeypatch.setattr("labcoat.checking.run.run_checks", broken)
    with pytest.raises(RuntimeError):
        selftest.run_selftest(catalog, fake, lab, mutate=False)
    assert fake.machines == {} and fake.removed


def test_selftest_sandboxes_are_labelled_selftest(catalog, lab, prepared) -> None:
    from labcoat.grading.selftest import start_selftest_session

    fake = FakeBackend()
    session = start_selftest_session(catalog, fake, lab)
    assert {m.label("labcoat.kind") for m in fake.machines.values()} == {"selftest"}
    with pytest.raises(NotStarted):  # never mistaken for the learner's lab
        current_session(fake, lab.id)
    assert len(session.all) == len(fake.machines)


# ----------------------------------------------------------------------------- grading


def test_grading_an_empty_submission_starts_no_sandbox(catalog, lab, tmp_path) -> None:
    from labcoat.grading.grade import grade_submission
    from labcoat.grading.submission import script_name

    fake = FakeBackend()
    grade = grade_submission(catalog, lab, tmp_path, quiz=False, backend=fake, student="nobody")
    assert fake.started == 0 and grade.gradable
    assert [(p.part, p.status) for p in grade.parts] == [(p.id, "failed") for p in lab.parts]
    assert all(f"no {script_name(p)} in the submission" == r.reason for p, r in zip(lab.parts, grade.parts, strict=True))
    assert all(c.points == 0 for p in grade.parts for c in p.checks)


def test_grading_removes_its_sandboxes_when_the_engine_fails_midway(catalog, lab, tmp_path, prepared) -> None:
    """An infrastructure failure is an ungradable grade, never a student's zero, and leaves nothing behind."""
    from labcoat.grading.grade import grade_submission
    from labcoat.grading.submission import script_name

    for part in lab.parts:
        (tmp_path / script_name(part)).write_text("echo hello\n")
    fake = FakeBackend()
    fake.fail_start_at = 1
    grade = grade_submission(catalog, lab, tmp_path, quiz=False, backend=fake, student="someone")
    assert not grade.gradable and "fake: start #1 fails" in (grade.error or "")
    assert fake.started >= 2 and fake.machines == {}


def test_machine_of_a_fake_is_a_machine() -> None:
    fake = FakeBackend()
    from labcoat.backends.base import MachineSpec

    m = fake.start(MachineSpec(image="x", memory=1), {"a": "1"})
    assert isinstance(m, Machine) and fake.find({"a": ""}) == [m]
    fake.put_bytes(m, b"hi", "/root/x")
    assert fake.files[(m.id, "/root/x")] == b"hi"


# ----------------------------------------------------------------------------- remove by labels


class LateEngine(FakeBackend):
    """An engine still creating a container when the first look comes: it shows up at the second."""

    def __init__(self) -> None:
        super().__init__()
        self.looks = 0

    def find(self, labels: Any, *, include_stopped: bool = True) -> list[Machine]:
        self.looks += 1
        if self.looks == 2:
            from labcoat.backends.base import MachineSpec

            self.start(MachineSpec(image="x", memory=1), {"s": "1"})
        return super().find(labels, include_stopped=include_stopped)


def test_remove_labelled_looks_again_for_a_container_still_being_created() -> None:
    engine = LateEngine()
    assert engine.remove_labelled({"s": "1"}, pause=0) == 1
    assert engine.machines == {} and engine.looks == 4  # quiet, found, quiet, quiet


def test_remove_labelled_impatient_looks_once_more_at_most_and_each_removes_the_batch() -> None:
    engine = LateEngine()
    assert engine.remove_labelled({"s": "1"}, patient=False, pause=0) == 0 and engine.looks == 1
    engine = LateEngine()
    batches: list[list[str]] = []
    engine.looks = 1

    def each(found: list[Machine]) -> None:
        batches.append([m.id for m in found])
        for m in found:
            engine.remove(m)

    assert engine.remove_labelled({"s": "1"}, pause=0, each=each) == 1
    assert batches == [["fake0000"]] and engine.machines == {}


def test_an_interrupted_start_removes_the_sandbox_that_appears_late(catalog, lab, monkeypatch) -> None:
    """remove_session finds what the engine was still creating when the start was interrupted."""

    class Engine(LateEngine):
        def start(self, spec: Any, labels: Any) -> Machine:
            if self.started == 0 and spec.name:  # the lab's first sandbox: the engine is slow, Ctrl-C
                self.started += 1
                self.late_labels = dict(labels)
                raise KeyboardInterrupt
            return super().start(spec, labels)

        def find(self, labels: Any, *, include_stopped: bool = True) -> list[Machine]:
            self.looks += 1
            if self.looks == 3 and getattr(self, "late_labels", None):  # it finishes being created now
                machine = Machine(id="late", name="late", labels=self.late_labels)
                self.machines[machine.id] = machine
            return FakeBackend.find(self, labels, include_stopped=include_stopped)

    monkeypatch.setattr("labcoat.runner.session.time.sleep", lambda s: None)
    engine = Engine()
    with pytest.raises(KeyboardInterrupt):
        start_lab(catalog, engine, lab)
    assert engine.machines == {} and "late" in engine.removed
