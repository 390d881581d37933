"""Where one `lab grade` of the reference submission spends its time: a per-part timeline.

    .venv/bin/python bench/timeline.py [--repeat 1] [--json FILE]

Grades the reference submission (labs/5.3/solutions + the all-correct quiz) in this
process, as `lab grade 5.3 --submission DIR` does, with the grader's steps wrapped to
record when each began and ended and in which thread (sandbox). Prints one line per step
(start offset, duration, thread, what) and a summary per kind of step. Nothing in
src/labcoat is changed: the wrappers are installed here, for this process only.
Needs Docker and the sandbox image; sandboxes carry the owner label `bench`.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("LABCOAT_OWNER", "bench")

EVENTS: list[dict] = []
T0 = [0.0]


def _label(kind: str, args: tuple, kwargs: dict) -> str:
    for a in args:
        pid = getattr(a, "id", None)
        if isinstance(pid, str) and (pid.startswith("part") or pid.startswith("lab5")):
            return f"{kind} {pid}"
        if isinstance(a, list) and a and hasattr(a[0], "id") and hasattr(a[0], "checks"):
            return f"{kind} {'+'.join(p.id for p in a)}"
        name = getattr(a, "name", None)
        if isinstance(name, str) and name.startswith("labcoat-"):
            return f"{kind} {name.split('-', 4)[-1]}"
    return kind


def wrap(module, attr: str, kind: str | None = None) -> None:
    original = getattr(module, attr)

    @functools.wraps(original)
    def timed(*args, **kwargs):
        began = time.monotonic()
        try:
            return original(*args, **kwargs)
        finally:
            EVENTS.append({"what": _label(kind or attr, args, kwargs), "kind": kind or attr,
                           "thread": threading.current_thread().name, "start": began - T0[0],
                           "took": time.monotonic() - began})

    setattr(module, attr, timed)


def install() -> None:
    from labcoat.grading import grade, host_parts, run, selftest
    from labcoat.runner import scenario, steps

    wrap(grade.GradeSession, "start_one", "sandbox start")
    wrap(grade.GradeSession, "remove", "remove sandboxes")
    wrap(steps, "prepare_part", "prepare")
    wrap(grade, "run_script_in_sandbox", "script")
    wrap(host_parts, "run_host_script", "host part (runner+proxy+script)")
    wrap(host_parts, "_start_runner", "runner start")
    wrap(host_parts, "policy_for", "policy")
    wrap(run, "run_checks", "checks (pytest)")
    wrap(grade, "settle", "settle")
    wrap(grade, "system_changes", "docker diff")
    wrap(grade, "sandbox_processes", "list processes")
    wrap(grade, "healthy", "healthy")
    wrap(selftest, "attempt", "attempt (script+provocation)")
    wrap(scenario.ScenarioRunner, "run", "provocation")
    wrap(grade, "grade_quiz", "quiz")
    wrap(grade, "_check_pending", "final checks")


def reference(tmp: Path) -> Path:
    import subprocess

    ref = tmp / "ref"
    subprocess.run([sys.executable, "-m", "labcoat", "grade", "--template", "5.3", str(ref)], check=True,
                   capture_output=True)
    for script in (ROOT / "labs" / "5.3" / "solutions").glob("*.sh"):
        shutil.copy(script, ref / script.name)
    correct = next((ROOT / "tests" / "unit" / "quiz" / "answers").glob("*5.3*correct*.yaml"), None)
    if correct:
        shutil.copy(correct, ref / "quiz.yaml")
    return ref


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="labcoat-timeline-"))
    runs = []
    try:
        ref = reference(tmp)
        began = time.monotonic()
        from labcoat.content.catalog import Catalog
        from labcoat.grading.grade import grade_submission

        install()
        catalog = Catalog.load(ROOT)
        lab = catalog.lab("5.3")
        imports = time.monotonic() - began
        for _ in range(args.repeat):
            EVENTS.clear()
            T0[0] = time.monotonic()
            g = grade_submission(catalog, lab, ref)
            total = time.monotonic() - T0[0]
            print(f"\n== {g.points}/{g.max_points} in {total:.1f} s (imports+catalog {imports:.1f} s; load "
                  f"{os.getloadavg()[0]:.1f})" + (f" ERROR {g.error}" if g.error else ""))
            for p in g.parts:
                if p.status != "passed":
                    print(f"   {p.part} {p.status}: {p.reason or [c.found for c in p.checks if not c.passed][:2]}")
            for e in sorted(EVENTS, key=lambda e: e["start"]):
                print(f"{e['start']:6.2f} +{e['took']:6.2f}  {e['thread'][-24:]:24}  {e['what']}")
            runs.append({"total": total, "points": g.points, "max_points": g.max_points, "load": os.getloadavg()[0],
                         "events": list(EVENTS)})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps({"imports": imports, "runs": runs}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
