"""One attempt pipeline: run a part's script in its sandbox, provoke the part's scenario, keep the record.

`lab provoke` (the provocation alone), `lab selftest` (the reference solution and the decoys)
and `lab grade` (a submission's script, run by grading's contained runner) all go through
here, so the order of script and provocation, the environment a script sees and where
the runner's record is kept (on the host, by sandbox id: runner/records.py) are decided once.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from labcoat.backends.base import Backend, CommandResult, Machine

if TYPE_CHECKING:
    from labcoat.content.catalog import Catalog
    from labcoat.content.models import Part
    from labcoat.runner.scenario import RunRecord
    from labcoat.runner.session import LabSession, Sandbox

OnEvent = Callable[[str, dict[str, Any]], Any]
PROVOCATION_JOIN = 600  # seconds a provocation "during" the script may still run once the script ended


def run_script(backend: Backend, machine: Machine, script: str, *, env: Mapping[str, str] | None = None,
               timeout: float = 120) -> CommandResult:
    """Run a shell script (text) inside the sandbox with bash, from /root."""
    wrapped = f"cd /root && bash -c {shlex.quote(script)}"
    return backend.run(machine, ["/bin/sh", "-c", wrapped], timeout=timeout, env=dict(env) if env else None)


def run_part_script(backend: Backend, sandbox: Sandbox, part: Part, script: str,
                    env: Mapping[str, str]) -> CommandResult:
    """Run a solution or decoy where the part says: in its sandbox, or on the host (its `docker` reaches the backend)."""
    if part.runs_on == "sandbox":
        return run_script(backend, sandbox.machine, script, env=env)
    host_env = {**os.environ, **backend.host_env(), **env}
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=host_env, timeout=180,
                          check=False)
    return CommandResult(proc.returncode, proc.stdout, proc.stderr)


def answers_file(part: Part) -> str:
    """Where a part's recorded answers live inside its sandbox."""
    from labcoat.runner.session import ANSWERS_DIR

    return f"{ANSWERS_DIR}/{part.id}.txt"


def clear_answers(backend: Backend, machine: Machine, part: Part) -> CommandResult:
    """Forget the part's recorded answers: each attempt starts without them."""
    return backend.run(machine, ["rm", "-f", answers_file(part)], timeout=15)


def keep_record(sandbox: Sandbox, scenario_id: str, record: RunRecord) -> RunRecord:
    """Keep what the runner measured on the host, where the part's checks read it."""
    from labcoat.runner.records import save_record

    save_record(sandbox.machine.id, scenario_id, record.to_dict())
    return record


def provoke_part(catalog: Catalog, sandbox: Sandbox, part: Part, *, on_event: OnEvent | None = None) -> RunRecord:
    """Run the part's scenario in its sandbox now and keep the record (`lab provoke PART`)."""
    from labcoat.runner.scenario import ScenarioRunner

    if not part.provoke:
        raise ValueError(f"{part.id} has nothing to provoke")
    scenario = catalog.scenario(part.provoke)
    runner = ScenarioRunner(scenario, sandbox.backend, sandbox.machine, seed=sandbox.seed, on_event=on_event)
    return keep_record(sandbox, scenario.id, runner.run())


def attempt(catalog: Catalog, session: LabSession, part: Part, script: str, env: Mapping[str, str],
            *, provoke: bool = True, run: Callable[[], Any] | None = None) -> Any:
    """One attempt at a part: the script, and the part's provocation after it or while it runs; its result.

    Provoking belongs to the attempt: the checks compare the answers with what the runner
    measured during that provocation, kept on the host. `run`, when given, runs the script
    instead of `run_part_script` (`lab grade` runs a submission's script contained, with
    its own limits); `provoke=False` runs the script alone.
    """
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
        thread.join(timeout=PROVOCATION_JOIN)
        record = box.get("record", runner.record)
    keep_record(sandbox, scenario.id, record)
    return ran
