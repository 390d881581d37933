"""How `lab grade` schedules one submission's sandboxes (no Docker: the grader's steps are stand-ins).

The sandboxes are graded at the same time; inside one, each part is checked before the next
script runs; a sandbox's last part is checked as soon as that sandbox is done (not when the
slowest one is), and only then is that sandbox removed.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from labcoat.content.catalog import Catalog
from labcoat.grading import grade
from labcoat.runner.session import LabSession

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lab():
    return Catalog.load(ROOT).lab("5.3")


def machine(name: str) -> SimpleNamespace:
    return SimpleNamespace(id=name, name=name)


def test_each_sandbox_is_checked_and_removed_when_it_is_done(lab, monkeypatch):
    boxes = {"": SimpleNamespace(machine=machine("main"))}
    boxes.update({p.id: SimpleNamespace(machine=machine(p.id)) for p in lab.parts if p.sandbox})
    session = LabSession(lab.id, boxes[""], {k: v for k, v in boxes.items() if k})
    events: list[tuple[float, str, str]] = []
    lock = threading.Lock()

    def log(what: str, who: str) -> None:
        with lock:
            events.append((time.monotonic(), what, who))

    slow = "part6"  # its script takes longest: the others must not wait for it

    def grade_one(gs, part, text, later, check=True):  # noqa: ANN001
        log("script", part.id)
        time.sleep(0.6 if part.id == slow else 0.02)
        run = grade.ScriptRun(grade.script_name(part), True, ran=True)
        if not check:
            return grade._Pending(part, run, None)
        log("checks", part.id)
        return grade.GradedPart(part.id, part.title, "passed", script=run)

    def check_pending(gs, pending):  # noqa: ANN001
        assert grade._CHECKS.locked()  # pytest sessions one at a time
        for p in pending:
            log("checks", p.part.id)
        return [grade.GradedPart(p.part.id, p.part.title, "passed", script=p.run) for p in pending]

    gs = grade.GradeSession(backend=None, catalog=None, lab=lab, owner="o", session_id="s", seed="1",  # type: ignore[arg-type]
                            student="st", limits=grade.Limits(), session=session)
    monkeypatch.setattr(gs, "prepare_parts", lambda parts: [log("prepare", p.id) for p in parts])
    monkeypatch.setattr(gs, "release", lambda m: log("removed", m.id))
    monkeypatch.setattr(grade, "_grade_one", grade_one)
    monkeypatch.setattr(grade, "_check_pending", check_pending)
    sub = SimpleNamespace(student="st", scripts={p.id: "true" for p in lab.parts})
    results: dict[str, grade.GradedPart] = {}

    grade._grade_sandboxes(gs, list(lab.parts), sub, lambda m: None, results)

    assert sorted(results) == sorted(p.id for p in lab.parts)
    at = {(what, who): t for t, what, who in events}
    order = [(what, who) for _, what, who in events]
    for box, parts in gs.groups(list(lab.parts)).items():
        ids = [p.id for p in parts]
        # prepared first, then each script followed by its checks before the next script
        assert all(at["prepare", i] <= at["script", ids[0]] for i in ids)
        for a, b in zip(ids, ids[1:], strict=False):
            assert order.index(("checks", a)) < order.index(("script", b))
        # removed only once its last part was checked
        assert at["checks", ids[-1]] <= at["removed", box]
    # the quick sandboxes were checked and removed while part 6's script still ran
    for box in ("main", "part3", "part4"):
        assert at["removed", box] < at["checks", slow]
    assert at["checks", "part5"] < at["script", slow] + 0.6
