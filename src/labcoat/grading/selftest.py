"""Prove a lab's checks both ways: fail fresh, fail for every decoy, pass after the solution (twice).

This is nbgrader's `validate --invert` and Instruqt's `track test` for labcoat labs.
It runs in a sandbox of its own (kind "selftest"), removed at the end whatever happens.
"""

from __future__ import annotations

import secrets
import shlex
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from labcoat.backends.base import Backend, Machine

if TYPE_CHECKING:
    from labcoat.content.catalog import Catalog
    from labcoat.content.models import Lab, Part
    from labcoat.grading.run import PartResult
    from labcoat.runner.session import LabSession


@dataclass
class Row:
    part: str
    stage: str
    expected: str  # "fail" | "pass"
    got: str  # "fail" | "pass" | "skipped" | "error"
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.got == self.expected or self.got == "skipped"


@dataclass
class SelftestReport:
    lab: str
    rows: list[Row] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.rows) and all(r.ok for r in self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {"lab": self.lab, "ok": self.ok, "rows": [{**asdict(r), "ok": r.ok} for r in self.rows]}


def run_script(backend: Backend, machine: Machine, script: str, *, env: dict[str, str] | None = None,
               timeout: float = 120) -> Any:
    """Run a shell script (text) inside the sandbox with bash, from /root."""
    wrapped = f"cd /root && bash -c {shlex.quote(script)}"
    return backend.run(machine, ["/bin/sh", "-c", wrapped], timeout=timeout, env=env)


def _verdict(result: PartResult) -> tuple[str, str]:
    status = result.status
    failing = [c for c in result.checks if c.status != "passed"]
    detail = "; ".join(f"{c.check}: {c.status}" + (f" ({c.message[:80]})" if c.message and c.status == "error"
                       else "") for c in failing[:3])
    got = {"passed": "pass", "failed": "fail"}.get(status, status)
    return got, detail or (result.skipped_reason or "")


def start_selftest_session(catalog: Catalog, backend: Backend, lab: Lab) -> LabSession:
    """A prepared session for `lab`, labelled kind=selftest (never mistaken for the learner's)."""
    from labcoat.runner.session import LabSession, Sandbox, ensure_lab_image, labels_for, machine_spec
    from labcoat.runner.steps import prepare_part

    seed = str(secrets.randbelow(2**31))
    started: list[Machine] = []

    def start(spec: Any, part_id: str) -> Sandbox:
        tag = ensure_lab_image(catalog, backend, spec.image, lambda m, f: None)
        labels = labels_for("selftest", lab.id, seed, **({"part": part_id} if part_id else {}))
        machine = backend.start(machine_spec(spec, tag, None, seed), labels)
        started.append(machine)
        return Sandbox(backend, machine, lab.id)

    try:
        session = LabSession(lab.id, start(lab.sandbox, ""))
        for part in lab.parts:
            if part.sandbox:
                session.parts[part.id] = start(part.sandbox, part.id)
        for part in lab.parts:
            prepare_part(catalog, session.for_part(part.id), part)
    except BaseException:
        for machine in started:
            backend.remove(machine)
        raise
    return session


def part_stages(catalog: Catalog, lab: Lab, part: Part) -> Iterable[tuple[str, str, str | None]]:
    """(stage name, expected verdict, script to run first or None) in selftest order."""
    yield "fresh sandbox", "fail", None
    for decoy in part.decoys:
        yield f"decoy {decoy.name}", "fail", catalog.lab_file(lab.id, decoy.script).read_text()
    solution = catalog.lab_file(lab.id, part.solution).read_text()
    yield "solution", "pass", solution
    yield "solution again", "pass", solution


def run_selftest(
    catalog: Catalog,
    backend: Backend,
    lab: Lab,
    *,
    part_ids: Iterable[str] = (),
    keep: bool = False,
    echo: Callable[[str], Any] | None = None,
) -> SelftestReport:
    """Every part of `lab` (or those named), both ways; one Row per stage."""
    from labcoat.grading.run import run_checks
    from labcoat.runner.steps import prepare_part

    wanted = set(part_ids)
    parts = [p for p in lab.parts if not wanted or p.id in wanted]
    report = SelftestReport(lab.id)
    session = start_selftest_session(catalog, backend, lab)
    try:
        for part in parts:
            if part.follow_along:
                report.rows.append(Row(part.id, "follow-along", "skip", "skipped", "nothing to verify: skipped"))
                if echo:
                    echo(f"- {part.id}: a follow-along step, nothing to verify: skipped")
                continue
            sandbox = session.for_part(part.id)
            env = {"LAB_SEED": str(sandbox.seed)}
            for stage, expected, script in part_stages(catalog, lab, part):
                if stage.startswith("decoy") or stage == "solution":
                    prepare_part(catalog, sandbox, part)  # each attempt starts from the part's prepared state
                    run_script(backend, sandbox.machine, f"rm -f /root/answers/{part.id}.txt", env=env)
                detail = ""
                if script is not None:
                    # A provocation "after" the script is a one-time event (an OOM kill): running the
                    # solution again must not undo the pass it earned, so it is not provoked twice.
                    provoke = not (stage == "solution again" and part.provoke_when == "after")
                    ran = attempt(catalog, session, part, script, env, provoke=provoke)
                    if ran.exit_status != 0 and expected == "pass" and stage == "solution":
                        detail = f"script exited {ran.exit_status}: {(ran.stderr or ran.stdout).strip()[-200:]}"
                got, why = _verdict(run_checks(catalog, session, lab, [part])[0])
                row = Row(part.id, stage, expected, got, detail or why)
                if expected == "fail" and got == "pass":
                    row.detail = _plain_words(part, stage)
                report.rows.append(row)
                if echo:
                    echo(f"{'✓' if row.ok else '✗'} {part.id} {stage}: expected {expected}, got {got}")
    finally:
        if not keep:
            from labcoat.runner.session import remove_learner_containers

            remove_learner_containers(backend, lab)
            for sb in session.all:
                backend.remove(sb.machine)
    return report


def attempt(catalog: Catalog, session: LabSession, part: Part, script: str, env: dict[str, str],
            *, provoke: bool = True, run: Callable[[], Any] | None = None) -> Any:
    """One attempt at a part: the script, and the part's provocation after or while it runs.

    Provoking belongs to the attempt: the checks compare the answers with what the
    runner measured during that provocation. `run`, when given, runs the script instead
    of `run_part_script` (`lab grade` runs a submission's script with its own limits).
    """
    import threading

    from labcoat.runner.records import save_record
    from labcoat.runner.scenario import ScenarioRunner

    sandbox = session.for_part(part.id)
    backend = sandbox.backend
    host_env = {**env, "LAB_SANDBOX": session.main.machine.name}
    go = run or (lambda: run_part_script(backend, sandbox, part, script, host_env))
    if not part.provoke or not provoke:
        return go()
    scenario = catalog.scenario(part.provoke)
    runner = ScenarioRunner(scenario, backend, sandbox.machine, seed=sandbox.seed)
    if part.provoke_when == "after":
        ran = go()
        record = runner.run()
    else:
        box: dict[str, Any] = {}
        thread = threading.Thread(target=lambda: box.update(record=runner.run()), daemon=True)
        thread.start()
        ran = go()
        thread.join(timeout=600)
        record = box.get("record", runner.record)
    save_record(sandbox.machine.id, scenario.id, record.to_dict())
    return ran


def _plain_words(part: Part, stage: str) -> str:
    """Why a stage that should have failed but passed is a problem, in a sentence."""
    if stage == "fresh sandbox":
        return "the checks PASS ON AN UNTOUCHED SANDBOX: they cannot tell work from no work"
    name = stage.removeprefix("decoy ")
    why = next((d.why for d in part.decoys if d.name == name), "")
    return f"the checks ACCEPT A WRONG ANSWER ({why})"


def run_part_script(backend: Backend, sandbox: Any, part: Part, script: str, env: dict[str, str]) -> Any:
    """Run a solution or decoy where the part says: in its sandbox, or on the host."""
    if part.runs_on == "sandbox":
        return run_script(backend, sandbox.machine, script, env=env)
    import os
    import subprocess

    from labcoat.backends.base import CommandResult

    host_env = {**os.environ, **env}
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=host_env, timeout=180,
                          check=False)
    return CommandResult(proc.returncode, proc.stdout, proc.stderr)
