"""Benchmark `lab` against its floor and its baselines, side by side in one run.

    .venv/bin/python bench/run.py [--repeat 7] [--json bench/results.json] [--skip-grade]
    .venv/bin/python bench/run.py --grade-only [--grade-repeat 5] [--no-batch]

Needs a Docker engine and the sandbox image (it starts lab 5.3 itself, as the
LABCOAT_OWNER "bench", and stops it at the end). Every figure is a median over
`--repeat` runs; ratios against the floor and the naive baseline are the headline,
because absolute times drift on shared machines.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
LAB = [PY, "-m", "labcoat"]
ENV = {**os.environ, "LABCOAT_OWNER": "bench", "NO_COLOR": "1"}

# A Killercoda-style verify script for part 1: one bash script, one `docker exec`.
BASH_VERIFY_PART1 = r"""
a=/root/answers/part1.txt
v() { awk -F': *' -v k="$1" '$1 == k {print $2}' $a 2>/dev/null; }
read -r pid name <<EOT
$(ps -eo pid=,comm=,rss= --sort=-rss | head -n 1 | awk '{print $1, $2}')
EOT
ok=0
[ "$(v largest_pid)" = "$pid" ] || { echo "FAIL: largest_pid"; ok=1; }
[ "$(v largest_name)" = "$name" ] || { echo "FAIL: largest_name"; ok=1; }
free=$(awk '/^MemFree:/ {print $2}' /proc/meminfo); avail=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
f=$(v mem_free_kb); m=$(v mem_available_kb)
[ -n "$f" ] && [ $(( (f - free) * (f - free) < (f - avail) * (f - avail) )) = 1 ] || { echo "FAIL: mem_free"; ok=1; }
[ -n "$m" ] && [ $(( (m - avail) * (m - avail) < (m - free) * (m - free) )) = 1 ] || { echo "FAIL: mem_available"; ok=1; }
lim=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)
[ "$(v limit_bytes)" = "$lim" ] || { echo "FAIL: limit"; ok=1; }
exit $ok
"""


def timed(argv: list[str], *, env: dict[str, str] | None = None, ok_codes: tuple[int, ...] = (0, 1)) -> float:
    began = time.perf_counter()
    proc = subprocess.run(argv, env=env or ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    took = time.perf_counter() - began
    if proc.returncode not in ok_codes:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.decode()[-500:]}")
    return took


def median_of(fn, repeat: int) -> dict[str, float]:
    samples = [fn() for _ in range(repeat)]
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "n": len(samples)}


def sandbox_names() -> dict[str, str]:
    out = subprocess.run(["docker", "ps", "--filter", "label=labcoat.owner=bench", "--filter",
                          "label=labcoat.kind=lab", "--format", '{{.Names}}\t{{.Label "labcoat.part"}}'],
                         capture_output=True, text=True, check=True).stdout
    return {part or "main": name for name, part in (line.split("\t") for line in out.splitlines())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results.json")
    parser.add_argument("--skip-grade", action="store_true", help="Leave out `lab grade` timings.")
    parser.add_argument("--grade-only", action="store_true", help="Only the `lab grade` timings (no lab started).")
    parser.add_argument("--grade-repeat", type=int, default=1, help="Runs of `lab grade` (reference submission).")
    parser.add_argument("--no-batch", action="store_true", help="Leave out the batch of 10.")
    args = parser.parse_args()
    n = args.repeat
    results: dict[str, dict] = {}
    if args.grade_only:
        _grade_timings(results, args.grade_repeat, not args.no_batch)
        for name, r in results.items():
            print(f"| {name} | {r['median']:.1f} | {r['min']:.1f} | {r['max']:.1f} | n={r['n']} |")
        # Added to the file's series, keyed by the time: the runs recorded before are kept.
        path = ROOT / "bench" / "grade-results.json"
        try:
            kept = json.loads(path.read_text())
        except (OSError, ValueError):
            kept = {}
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        kept.setdefault("series", {})[f"{stamp} (bench/run.py --grade-only)"] = {
            "cpus": os.cpu_count(), "load": os.getloadavg()[0], "grade": results}
        path.write_text(json.dumps(kept, indent=2) + "\n")
        return 0

    subprocess.run([*LAB, "stop"], env=ENV, capture_output=True, check=False)
    subprocess.run([*LAB, "start", "5.3", "--quiet"], env=ENV, check=True, capture_output=True)
    names = sandbox_names()
    main_box = names["main"]
    print(f"sandboxes: {names}", file=sys.stderr)

    results["floor: python -c pass + docker exec true"] = median_of(
        lambda: timed([PY, "-c", "pass"]) + timed(["docker", "exec", main_box, "true"]), n)
    results["killercoda-style: one docker exec of a bash verify (part1)"] = median_of(
        lambda: timed(["docker", "exec", main_box, "bash", "-c", BASH_VERIFY_PART1]), n)
    for part in ("part1", "part2"):  # the parts whose checks need only `host`
        check_file = ROOT / "checks" / "lab_5_3" / f"test_{part}.py"
        results[f"naive: stock pytest-testinfra, {part}"] = median_of(
            lambda f=check_file: timed([PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir",
                                        str(f.parent), "-c", os.devnull, str(f), f"--hosts=docker://{main_box}"]), n)
    for part in ("part1", "part2", "part3", "part4", "part5", "part6"):
        results[f"lab check {part}"] = median_of(lambda p=part: timed([*LAB, "check", p]), n)
    results["lab check (all parts)"] = median_of(lambda: timed([*LAB, "check"]), n)
    results["lab --help"] = median_of(lambda: timed([*LAB, "--help"], ok_codes=(0,)), n)

    def start_stop() -> tuple[float, float]:
        stop = timed([*LAB, "stop"], ok_codes=(0,))
        start = timed([*LAB, "start", "5.3", "--quiet"], ok_codes=(0,))
        return start, stop

    pairs = [start_stop() for _ in range(max(3, n // 2))]
    results["lab start 5.3 (image built)"] = _stats([p[0] for p in pairs])
    results["lab stop"] = _stats([p[1] for p in pairs])

    latencies = []
    for _ in range(3):
        proc = subprocess.run([*LAB, "run", "oom-kill", "--json"], env=ENV, capture_output=True, text=True, check=False)
        if proc.returncode in (0, 1) and proc.stdout.strip():
            record = json.loads(proc.stdout)
            latencies += [e["report_latency_ms"] / 1000 for e in record["events"]
                          if e.get("kind") == "oom_kill" and e.get("report_latency_ms") is not None]
    if latencies:
        results["oom-kill: kernel kill -> runner report"] = _stats(latencies)

    if not args.skip_grade and (ROOT / "src" / "labcoat" / "cli" / "grade.py").exists():
        _grade_timings(results)

    subprocess.run([*LAB, "stop"], env=ENV, capture_output=True, check=False)
    floor = results["floor: python -c pass + docker exec true"]["median"]
    naive = {p: results[f"naive: stock pytest-testinfra, {p}"]["median"] for p in ("part1", "part2")}
    one_part = results["lab check part1"]["median"]
    rows = []
    for name, r in results.items():
        part = name.split()[-1] if name.startswith("lab check part") else None
        rows.append({"what": name, **{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()},
                     "x_floor": round(r["median"] / floor, 2),
                     "x_naive": round(r["median"] / naive[part], 2) if part in naive else None,
                     "x_one_part": round(r["median"] / one_part, 2) if name == "lab check (all parts)" else None})
    machine = {"python": platform.python_version(), "cpus": os.cpu_count(), "kernel": platform.release(),
               "docker": subprocess.run(["docker", "version", "-f", "{{.Server.Version}}"], capture_output=True,
                                        text=True, check=False).stdout.strip(),
               "date": time.strftime("%Y-%m-%d %H:%M")}
    args.json.write_text(json.dumps({"machine": machine, "repeat": n, "rows": rows}, indent=2))
    print(f"| what | median s | min | max | x floor | x naive |  ({machine})")
    print("|---|---|---|---|---|---|")
    for r in rows:
        extra = r["x_naive"] if r["x_naive"] is not None else (f"{r['x_one_part']} x one part" if r["x_one_part"] else "")
        print(f"| {r['what']} | {r['median']:.3f} | {r['min']:.3f} | {r['max']:.3f} | {r['x_floor']} | {extra} |")
    return 0


def _stats(samples: list[float]) -> dict[str, float]:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "n": len(samples)}


def _grade_timings(results: dict[str, dict], repeat: int = 1, batch_too: bool = True) -> None:
    """`lab grade` of the reference submission, and a batch of 10 with --jobs 2."""
    tmp = Path(tempfile.mkdtemp(prefix="labcoat-bench-"))
    try:
        ref = tmp / "ref"
        subprocess.run([*LAB, "grade", "--template", "5.3", str(ref)], env=ENV, check=True, capture_output=True)
        for script in (ROOT / "labs" / "5.3" / "solutions").glob("*.sh"):
            shutil.copy(script, ref / script.name)
        answers = ROOT / "tests" / "unit" / "quiz" / "answers"
        correct = next((p for p in answers.glob("*5.3*correct*.yaml")), None)
        if correct:
            shutil.copy(correct, ref / "quiz.yaml")
        results["lab grade (reference submission)"] = median_of(
            lambda: timed([*LAB, "grade", "5.3", "--submission", str(ref)], ok_codes=(0,)), repeat)
        if not batch_too:
            return
        batch = tmp / "batch"
        for i in range(10):
            shutil.copytree(ref, batch / f"student{i:02d}")
        results["lab grade --batch 10 --jobs 2"] = median_of(
            lambda: timed([*LAB, "grade", "5.3", "--batch", str(batch), "--jobs", "2", "--out", str(tmp / "out")],
                          ok_codes=(0, 1)), 1)
    except (subprocess.CalledProcessError, RuntimeError) as exc:
        print(f"grade timings skipped: {exc}", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
