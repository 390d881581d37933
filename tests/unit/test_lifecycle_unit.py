"""The one sandbox lifecycle (runner/lifecycle.py) and its users, on the shared fake backend: no Docker.

Each use keeps or removes its sandboxes as documented: disposable uses (selftest, grading)
remove them on every exit, `lab start` keeps them on success only, and an error or Ctrl-C
always removes them by their labels, also one the engine was still creating.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fakes import FakeBackend

from labcoat.backends.base import Machine, MachineSpec
from labcoat.errors import EnvironmentProblem
from labcoat.runner.lifecycle import Lifecycle, prepare_session
from labcoat.runner.session import L_SESSION, answers_folder, start_lab

ROOT = Path(__file__).resolve().parents[2]
SPEC = MachineSpec(image="x", memory=1 << 20)
SEL = {"labcoat.session": "s1", "labcoat.owner": "me"}


class Straggler(FakeBackend):
    """Another machine with the selector's labels appears at the first look (the engine was still creating it)."""

    def __init__(self) -> None:
        super().__init__()
        self.looks = 0

    def find(self, labels: Any, *, include_stopped: bool = True) -> list[Machine]:
        self.looks += 1
        if self.looks == 1:
            self.machines["late"] = Machine(id="late", name="late", labels={**SEL, "labcoat.kind": "x"})
        return super().find(labels, include_stopped=include_stopped)


# ----------------------------------------------------------------------------- the context manager


@pytest.mark.parametrize("keep", ["never", "on_success"])
@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_an_error_or_ctrl_c_removes_every_sandbox_by_its_labels(keep, error) -> None:
    fake = Straggler()
    forgotten: list[str] = []
    with pytest.raises(error), Lifecycle(fake, SEL, keep=keep, forget=lambda m: forgotten.append(m.id),
                                         pause=0) as life:
        a = life.start(SPEC, {**SEL, "labcoat.part": "a"})
        b = life.start(SPEC, dict(SEL))
        raise error
    assert fake.machines == {}
    assert sorted(fake.removed) == sorted([a.id, b.id, "late"])  # the straggler too, found by label
    assert sorted(forgotten) == sorted(fake.removed)  # the host forgets each one it removed


def test_disposable_uses_remove_at_exit_and_lab_start_keeps_on_success() -> None:
    fake = FakeBackend()
    with Lifecycle(fake, SEL, pause=0) as life:
        life.start(SPEC, dict(SEL))
    assert fake.machines == {} and len(fake.removed) == 1
    with Lifecycle(fake, SEL, keep="on_success", pause=0) as life:
        kept = life.start(SPEC, dict(SEL))
    assert list(fake.machines) == [kept.id]


def test_keep_always_keeps_even_after_an_error() -> None:
    fake = FakeBackend()
    with pytest.raises(RuntimeError), Lifecycle(fake, SEL, keep="always") as life:
        life.start(SPEC, dict(SEL))
        raise RuntimeError
    assert len(fake.machines) == 1


def test_a_sandbox_without_the_lifecycles_labels_is_refused_before_it_starts() -> None:
    fake = FakeBackend()
    life = Lifecycle(fake, SEL)
    with pytest.raises(ValueError, match="labcoat.owner"):
        life.start(SPEC, {"labcoat.session": "s1"})
    assert fake.started == 0
    with pytest.raises(ValueError):
        Lifecycle(fake, {})


def test_a_failed_start_makes_the_sweep_patient() -> None:
    """The start that raised may have created a container anyway: the sweep looks several times."""
    fake = Straggler()
    fake.fail_start_at = 0
    life = Lifecycle(fake, SEL, keep="on_success", pause=0)
    with pytest.raises(EnvironmentProblem), life:
        life.start(SPEC, dict(SEL))
    assert fake.machines == {} and fake.looks >= 3  # found "late", then looked until two quiet looks


def test_quiet_removal_leaves_what_fails_to_the_label_sweep() -> None:
    class Stubborn(FakeBackend):
        tries = 0

        def remove(self, machine: Machine) -> None:
            self.tries += 1
            if self.tries == 1:
                raise EnvironmentProblem("engine busy")
            super().remove(machine)

    fake = Stubborn()
    with Lifecycle(fake, SEL, quiet=True, pause=0) as life:
        m = life.start(SPEC, dict(SEL))
        life.remove([m])  # fails quietly
        assert life.live == [m]
    assert fake.machines == {}  # removed at exit
    loud = Stubborn()
    life = Lifecycle(loud, SEL)
    m = life.start(SPEC, dict(SEL))
    with pytest.raises(EnvironmentProblem):
        life.remove([m])


def test_prepare_session_prepares_each_part_where_it_runs(catalog, lab, prepared) -> None:
    session, _ = start_lab(catalog, FakeBackend(), lab)
    prepared.clear()
    prepare_session(catalog, session, lab.parts)
    assert sorted(p for _, p in prepared) == sorted(p.id for p in lab.parts)
    order = [p for _, p in prepared]
    for sb in session.all:  # within one sandbox, in the lab's order
        mine = [p.id for p in lab.parts if session.for_part(p.id) is sb]
        assert [p for p in order if p in mine] == mine


# ----------------------------------------------------------------------------- its users


def test_lab_start_keeps_its_sandboxes_on_success(catalog, lab, prepared) -> None:
    fake = FakeBackend()
    session, _ = start_lab(catalog, fake, lab)
    assert sorted(fake.machines) == sorted(sb.machine.id for sb in session.all) and not fake.removed


def test_ctrl_c_during_lab_start_removes_the_sandboxes_and_their_answers(catalog, lab, monkeypatch) -> None:
    fake = FakeBackend()
    seen: list[Any] = []

    def interrupted(catalog: Any, sandbox: Any, part: Any) -> None:
        seen.append(sandbox)
        raise KeyboardInterrupt

    monkeypatch.setattr("labcoat.runner.steps.prepare_part", interrupted)
    with pytest.raises(KeyboardInterrupt):
        start_lab(catalog, fake, lab)
    assert fake.machines == {} and seen
    session_id = seen[0].machine.labels[L_SESSION]
    assert not answers_folder(session_id, "").exists()  # forgotten with the sandbox


def test_restart_part_removes_the_new_sandbox_when_its_preparation_fails(catalog, lab, prepared,
                                                                       monkeypatch) -> None:
    from labcoat.runner.session import restart_part

    fake = FakeBackend()
    session, _ = start_lab(catalog, fake, lab)
    part = next(p for p in lab.parts if p.sandbox)
    before = set(fake.machines)

    def broken(catalog: Any, sandbox: Any, part: Any) -> None:
        raise RuntimeError("prepare failed")

    monkeypatch.setattr("labcoat.runner.steps.prepare_part", broken)
    with pytest.raises(RuntimeError):
        restart_part(catalog, session, lab, part)
    assert set(fake.machines) == before - {session.parts[part.id].machine.id}  # the old one and the new one gone


def test_selftest_keep_keeps_its_sandboxes_and_ctrl_c_removes_them(catalog, lab, prepared, monkeypatch) -> None:
    from labcoat.grading import selftest

    fake = FakeBackend()
    monkeypatch.setattr(selftest, "_selftest_parts", lambda *a, **kw: None)
    selftest.run_selftest(catalog, fake, lab, keep=True, mutate=False)
    kept = set(fake.machines)
    assert kept and {m.label("labcoat.kind") for m in fake.machines.values()} == {"selftest"}

    def interrupted(*a: Any, **kw: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(selftest, "_selftest_parts", interrupted)
    with pytest.raises(KeyboardInterrupt):
        selftest.run_selftest(catalog, fake, lab, mutate=False)
    assert set(fake.machines) == kept  # its own went; the kept session of the first run is not its own


def test_grading_removes_released_replaced_and_late_sandboxes(catalog, lab, prepared) -> None:
    from labcoat.grading.limits import Limits
    from labcoat.grading.sandboxes import GradeSession

    fake = FakeBackend()
    gs = GradeSession(fake, catalog, lab, "grader-1", "sess1", "7", "st", Limits())
    parts = [p for p in lab.parts if p.sandbox][:1]
    session = gs.start(parts)
    gs.release(session.main.machine)
    gs.replace_sandbox(parts[0], [])
    late = Machine(id="late", name="late", labels=dict(gs.labels()))
    fake.machines[late.id] = late
    gs.remove()
    assert fake.machines == {} and "late" in fake.removed
    assert len(gs.started) == 3  # main, the part's, its replacement


def test_a_selftest_whose_preparation_fails_removes_its_sandboxes(catalog, lab, monkeypatch) -> None:
    from labcoat.grading import selftest

    def broken(catalog: Any, sandbox: Any, part: Any) -> None:
        raise RuntimeError("prepare failed")

    monkeypatch.setattr("labcoat.runner.steps.prepare_part", broken)
    for run in (lambda fake: selftest.start_selftest_session(catalog, fake, lab),
                lambda fake: selftest.run_selftest(catalog, fake, lab, keep=True, mutate=False)):
        fake = FakeBackend()
        with pytest.raises(RuntimeError):
            run(fake)
        assert fake.machines == {} and fake.removed  # --keep keeps only a session that was ready
