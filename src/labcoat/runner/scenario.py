"""Run a scenario: provoke the kernel in a sandbox and observe what it really does.

The runner carries out the scenario's steps through the one step-kind registry
(`runner.steps` holds the acting kinds, `runner.observing` the observing ones), which sample
the sandbox's memory cgroup in the background from the host side (`runner.observe`), watch
the OOM-kill counter every few milliseconds, and evaluate the scenario's expectations against
what was measured. What cannot be observed on a host (no PSI, no host view of the cgroup) is
reported as such, never invented.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from labcoat.backends.base import Backend, Machine
from labcoat.errors import LabError
from labcoat.runner.observe import (  # noqa: F401 (re-exported: the public names of scenario runs)
    FAILED,
    PASSED,
    SIZE_METRICS,
    UNOBSERVABLE,
    Expectation,
    KmsgTail,
    Observer,
    RunRecord,
    Watch,
    metrics_of,
)
from labcoat.runner.steps import StepContext, StepFailed, draw_vars, run_step

if TYPE_CHECKING:
    from labcoat.content.catalog import Catalog
    from labcoat.content.models import Scenario, Step


class ScenarioRunner:
    """Carries out one scenario in one sandbox and fills a RunRecord."""

    def __init__(
        self,
        scenario: Scenario,
        backend: Backend,
        machine: Machine,
        *,
        seed: int = 0,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
        ask_prediction: Callable[[list[dict[str, Any]]], int | None] | None = None,
    ) -> None:
        self.scenario, self.backend, self.machine = scenario, backend, machine
        self.emit = on_event or (lambda kind, data: None)
        self.ask_prediction = ask_prediction
        self.record = RunRecord(scenario.id, scenario.title, machine.name, vars=draw_vars(scenario, seed))
        self.ctx = StepContext(backend, machine, self.record.vars, on_event=self.step_event, run=self)
        self.watch: Watch | None = None
        self.t0 = time.monotonic()

    def step_event(self, kind: str, data: dict[str, Any]) -> None:
        event = {"kind": kind, "t": round(time.monotonic() - self.t0, 4), **data}
        self.record.events.append(event)
        self.emit(kind, event)

    def run(self) -> RunRecord:
        """Every step in order; the record says passed/failed/error. Never leaves the watch running."""
        from labcoat.hostinfo import missing

        lacking = missing(self.scenario.requires)
        if lacking:
            self.record.status = "skipped"
            self.record.reason = "; ".join(f.detail for f in lacking)
            return self.record
        try:
            for i, step in enumerate(self.scenario.steps):
                self.emit("step", {"index": i, "kind": step.kind, "total": len(self.scenario.steps)})
                self.do(step)
            if self.watch:
                self.watch.settle()
            self.record.status, self.record.reason = judge(self.record.expectations)
        except StepFailed as exc:
            self.record.status, self.record.reason = "error", exc.message
        except KeyboardInterrupt:
            self.record.status, self.record.reason = "interrupted", "stopped with Ctrl-C"
            raise
        finally:
            if self.watch:
                self.watch.stop.set()
                self.watch.join(timeout=5)
            self.record.duration = round(time.monotonic() - self.t0, 3)
        return self.record

    # ------------------------------------------------------------------ for the observing steps

    def do(self, step: Step) -> None:
        run_step(self.ctx, step)

    def need_watch(self) -> Watch:
        if self.watch is None:
            raise StepFailed("this step needs a `sample` step before it (nothing is being measured)")
        return self.watch

    def since_mark(self, label: str | None) -> tuple[float | None, int]:
        """(time, first sample index) of a mark; (None, 0) for no mark."""
        if label is None:
            return None, 0
        mark = self.record.marks.get(label)
        if mark is None:
            raise StepFailed(f"no `mark` labelled {label!r} before this step")
        return mark["t"], max(0, int(mark["sample"]))


def judge(expectations: list[Expectation]) -> tuple[str, str]:
    """The run's status and reason from its expectations: failed if any failed, else passed.

    Unobservable expectations count as neither; the reason says how many there were.
    """
    failed = [e for e in expectations if e.state == FAILED]
    unobservable = [e for e in expectations if e.state == UNOBSERVABLE]
    if failed:
        return "failed", f"{len(failed)} of {len(expectations)} expectation(s) did not hold"
    if unobservable:
        return "passed", f"{len(unobservable)} expectation(s) not observable on this host"
    return "passed", ""


def run_standalone(
    catalog: Catalog,
    backend: Backend,
    scenario: Scenario,
    *,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
    ask_prediction: Callable[[list[dict[str, Any]]], int | None] | None = None,
) -> RunRecord:
    """Start the scenario's own sandbox, run it, and remove the sandbox whatever happens.

    The sandbox carries a session label of its own; on any exit (Ctrl-C included) the
    runner removes it, and looks for that label afterwards in case the interruption landed
    while the engine was still creating the container.
    """
    import secrets

    from labcoat.hostinfo import missing
    from labcoat.runner.lifecycle import Lifecycle
    from labcoat.runner.session import L_OWNER, L_SESSION, ensure_lab_image, labels_for, machine_spec, owner

    if scenario.sandbox is None:
        raise LabError(f"scenario {scenario.id} runs only inside a lab part (it declares no sandbox)",
                       hint="run it through its lab: `lab provoke PART`")
    lacking = missing(scenario.requires)
    if lacking:
        return RunRecord(scenario.id, scenario.title, "", status="skipped",
                         reason="; ".join(f.detail for f in lacking))
    emit = on_event or (lambda kind, data: None)
    emit("status", {"message": "preparing the sandbox image"})
    tag = ensure_lab_image(catalog, backend, scenario.sandbox.image, lambda m, f: emit("status", {"message": m}))
    seed = secrets.randbelow(2**31)
    session = secrets.token_hex(4)
    labels = labels_for("scenario", seed=str(seed), scenario=scenario.id, session=session)
    with Lifecycle(backend, {L_SESSION: session, L_OWNER: owner()}) as life:  # removed on every exit
        emit("status", {"message": "starting the sandbox"})
        machine = life.start(machine_spec(scenario.sandbox, tag, None, str(seed)), labels)
        emit("sandbox", {"name": machine.name, "session": session, "memory": scenario.sandbox.memory})
        return ScenarioRunner(scenario, backend, machine, seed=seed, on_event=on_event,
                              ask_prediction=ask_prediction).run()
