"""Reproduce lab 5.3 part 4's slow-machine flake without a VM (issue 10, docs/design.md "Known flakiness").

Runs part 4's reference solution (or another script) N times in one selftest session,
each time with the part's provocation, then part 4's checks, and prints which check failed.
Slowness is injected where it hit the TCG guest:

  --cpus X         CPU quota of the part's sandbox (docker update): the learner's script
                   and the hog run late (a TCG guest runs them 30-40x slower);
  --sample-lag S   each runner sample is taken up to S seconds late (uniformly random):
                   the runner's 250 ms sampling thread starved, as on a loaded TCG host.

    .venv/bin/python scripts/psi-repro.py --runs 10 --cpus 0.05
    .venv/bin/python scripts/psi-repro.py --runs 10 --sample-lag 1.5 --script labs/5.3/solutions/part4.sh

Needs Docker (it starts labelled selftest sandboxes and removes them at the end).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--cpus", type=float, default=None)
    parser.add_argument("--sample-lag", type=float, default=0.0)
    parser.add_argument("--script", type=Path, default=None, help="default: the part's reference solution")
    parser.add_argument("--lab", default="5.3")
    parser.add_argument("--part", default="part4")
    args = parser.parse_args()

    from labcoat.app import App
    from labcoat.checking.run import run_checks
    from labcoat.grading.selftest import _verdict, attempt, run_script, start_selftest_session
    from labcoat.runner import scenario
    from labcoat.runner.records import load_record
    from labcoat.runner.steps import prepare_part

    if args.sample_lag:
        original = scenario.Observer.snapshot

        def late(self):  # type: ignore[no-untyped-def]
            time.sleep(random.uniform(0, args.sample_lag))
            return original(self)

        scenario.Observer.snapshot = late  # type: ignore[method-assign]

    app = App()
    catalog, backend = app.catalog, app.backend
    lab = catalog.lab(args.lab)
    part = next(p for p in lab.parts if p.id == args.part)
    script = (args.script or catalog.lab_file(lab.id, part.solution)).read_text()
    session = start_selftest_session(catalog, backend, lab)
    failures: dict[str, int] = {}
    try:
        sandbox = session.for_part(part.id)
        if args.cpus:
            subprocess.run(["docker", "update", "--cpus", str(args.cpus), sandbox.machine.id], check=True,
                           capture_output=True)
        env = {"LAB_SEED": str(sandbox.seed)}
        for i in range(args.runs):
            prepare_part(catalog, sandbox, part)
            run_script(backend, sandbox.machine, f"rm -f /root/answers/{part.id}.txt", env=env)
            ran = attempt(catalog, session, part, script, env)
            got, why = _verdict(run_checks(catalog, session, lab, [part])[0])
            record = load_record(sandbox.machine.id, part.provoke) or {}
            ts = [s["t"] for s in record.get("samples", [])]
            gaps = [b - a for a, b in zip(ts, ts[1:], strict=False)]
            answers = backend.run(sandbox.machine, ["cat", f"/root/answers/{part.id}.txt"], timeout=10).stdout
            sys.stdout.write(json.dumps({"run": i + 1, "got": got, "why": why, "exit": ran.exit_status,
                                         "samples": len(ts), "max_gap": round(max(gaps, default=0), 3),
                                         "answers": answers.strip().splitlines()}) + "\n")
            sys.stdout.flush()
            if got != "pass":
                failures[why] = failures.get(why, 0) + 1
    finally:
        from labcoat.runner.session import remove_learner_containers

        remove_learner_containers(backend, lab)
        for sb in session.all:
            backend.remove(sb.machine)
    sys.stdout.write(f"failed {sum(failures.values())}/{args.runs}: {failures}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
