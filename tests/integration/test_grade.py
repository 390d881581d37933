"""`lab grade` on real sandboxes: the reference passes, hostile submissions cost only their own part.

Each hostile submission (tests/fixtures/submissions/) attacks one part; a reference
solution for a neighbouring part is added, and must be unaffected. After every test: no
container with the grade labels is left, no process carrying the hostile marker runs on
the host, and the host answered quickly throughout.
"""

from __future__ import annotations

import contextlib
import csv
import json
import shutil
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from labcoat.backends.docker import DockerBackend
from labcoat.runner.session import owner

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parents[2]
SUBMISSIONS = ROOT / "tests" / "fixtures" / "submissions"
SOLUTIONS = ROOT / "labs" / "5.3" / "solutions"
ALL_CORRECT = ROOT / "tests" / "unit" / "quiz" / "answers" / "5.3-all-correct.yaml"
MARKER = b"labcoat-hostile-"
# Part 2's verdict on the state its script leaves. Its timing check, and whether a one-file cache drop
# (fadvise) took effect right after writing, depend on the host's load: the reference test scores them.
PART2_STATE = {"test_file_has_the_stated_size", "test_file_is_in_the_page_cache"}


def grade_containers(backend: DockerBackend) -> list:
    return backend.find({"labcoat.kind": "grade", "labcoat.grader": owner()})


def hostile_processes() -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if MARKER in cmdline:
            shown = cmdline.replace(b"\0", b" ")[:120]
            found.append(f"{proc.name}: {shown!r}")
    return found


@pytest.fixture
def backend() -> Iterator[DockerBackend]:
    b = DockerBackend()
    yield b
    left = grade_containers(b)
    for machine in left:
        b.remove(machine)
    assert not left, f"grading left containers behind: {[m.name for m in left]}"
    assert hostile_processes() == [], "a hostile script's process survived on the host"


@contextmanager
def responsiveness() -> Iterator[list[float]]:
    """Time a tiny host command every 0.2 s while the block runs (seconds per run)."""
    samples: list[float] = []
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            began = time.monotonic()
            subprocess.run(["true"], check=True)
            samples.append(time.monotonic() - began)
            stop.wait(0.2)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join(5)


def submission(tmp_path: Path, name: str | None, *solutions: str, quiz: bool = False) -> Path:
    """A copy of a fixture submission plus the reference solutions of `solutions` (part ids)."""
    dest = tmp_path / (name or "reference")
    if name:
        shutil.copytree(SUBMISSIONS / name, dest)
    else:
        dest.mkdir()
    for part in solutions:
        shutil.copy(SOLUTIONS / f"{part}.sh", dest / f"{part}.sh")
    if quiz:
        shutil.copy(ALL_CORRECT, dest / "quiz.yaml")
    return dest


def grade(cli, sub: Path, tmp_path: Path, *args: str) -> tuple[object, dict]:  # noqa: ANN001
    out = tmp_path / f"{sub.name}.json"
    result = cli("--content", str(ROOT), "--backend", "docker", "grade", "5.3", "--submission", str(sub),
                 "--json", str(out), "-q", *args)
    assert out.exists(), result
    return result, json.loads(out.read_text())


def parts(data: dict) -> dict[str, dict]:
    return {p["part"]: p for p in data["parts"]}


def state_checks_pass(part: dict) -> None:
    status = {c["check"]: c["status"] for c in part["checks"]}
    detail = {c["check"]: (c["status"], c["expected"], c["found"]) for c in part["checks"]}
    assert all(status[name] == "passed" for name in PART2_STATE), (detail, part["script"])
    assert "error" not in status.values()


# ----------------------------------------------------------------------------- honest submissions


# Part 3 scored 10/25 once (1 of 3 clean CI runs on 2026-12-01): found since, the kernel's OOM exit race
# (docs/design.md "Known flakiness": the trigger kills the runner-up before the victim's pages are uncharged),
# which part 3's check now accepts and names. The rerun stays for the rest of this end-to-end run on a loaded
# host (six parts, a proxy, four sandboxes): a rerun is printed (`R`) and counted, never hidden.
@pytest.mark.flaky(reruns=1)
def test_reference_submission_passes_in_locked_down_sandboxes(cli, backend, tmp_path, monkeypatch):
    sub = submission(tmp_path, None, "part1", "part2", "part3", "part4", "part5", "part6", quiz=True)
    summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    seen: dict[str, dict] = {}
    stop = threading.Event()

    def watch() -> None:  # inspect the grading sandboxes while they exist
        while not stop.is_set() and len(seen) < 4:
            for machine in grade_containers(backend):
                if machine.id not in seen:
                    with contextlib.suppress(Exception):  # removed in between
                        seen[machine.id] = backend.inspect(machine)
            stop.wait(0.3)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    began = time.monotonic()
    try:
        result, data = grade(cli, sub, tmp_path, "--junit", str(tmp_path / "junit.xml"))
    finally:
        stop.set()
        watcher.join(5)
    elapsed = time.monotonic() - began
    assert result.exit_code == 0, (result, data.get("error"))
    assert data["gradable"] and data["passed"]
    by_part = parts(data)
    for pid in ("part1", "part2", "part3", "part4", "part6"):
        assert by_part[pid]["points"] == by_part[pid]["max_points"] > 0, by_part[pid]
    assert by_part["part3"]["provocation"]["status"] == "passed"
    # The host part ran too: its docker commands went through the grading proxy (test_part5_grading.py).
    assert by_part["part5"]["status"] == "passed" and by_part["part5"]["points"] == 15
    assert data["quiz"]["points"] == 20
    assert data["points"] == data["max_points"] == 135  # 115 for the six parts, 20 for the quiz
    assert elapsed < 180
    junit = ET.parse(tmp_path / "junit.xml").getroot()
    assert junit.get("failures") == "0" and junit.get("errors") == "0"
    assert "PASS" in summary.read_text()
    # Every grading sandbox was locked down.
    assert len(seen) == 4, f"saw {len(seen)} grading sandboxes"
    for info in seen.values():
        host = info["HostConfig"]
        assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
        assert "no-new-privileges" in host["SecurityOpt"]
        assert host["NetworkMode"] == "none"
        assert host["LogConfig"]["Type"] == "none"
        assert host["PidsLimit"] == 256
        assert host["Memory"] in (512 << 20, 384 << 20, 256 << 20, 128 << 20) and host["MemorySwap"] == host["Memory"]
        assert not any("docker.sock" in str(m.get("Source")) for m in info.get("Mounts", []))
        labels = info["Config"]["Labels"]
        assert labels["labcoat.kind"] == "grade" and labels["labcoat.owner"] != owner()


def test_empty_submission_scores_zero_without_a_sandbox(cli, backend, tmp_path):
    sub = tmp_path / "empty"
    shutil.copytree(SUBMISSIONS / "empty", sub)
    began = time.monotonic()
    result, data = grade(cli, sub, tmp_path)
    assert result.exit_code == 1, result
    assert data["gradable"] is True and data["points"] == 0 and data["max_points"] == 135  # part 5 counts too
    assert data["quiz"]["points"] == 0 and "no quiz.yaml" in data["quiz"]["error"]
    assert all(not p["script"]["ran"] for p in data["parts"])
    assert time.monotonic() - began < 20


# ----------------------------------------------------------------------------- hostile submissions


def test_fork_bomb_costs_only_its_part(cli, backend, tmp_path):
    sub = submission(tmp_path, "fork-bomb", "part2")
    began = time.monotonic()
    with responsiveness() as latency:
        result, data = grade(cli, sub, tmp_path, "--part", "part1", "--part", "part2", "--timeout", "20")
    assert data["gradable"], data["error"]
    by_part = parts(data)
    bomb = by_part["part1"]
    assert bomb["points"] == 0
    assert bomb["script"]["leftover_processes"] >= 50  # the bomb was stopped from the host
    assert bomb["script"]["duration"] < 20
    state_checks_pass(by_part["part2"])  # same sandbox, graded after the bomb: unaffected
    assert time.monotonic() - began < 90
    assert max(latency) < 3, f"the host answered slowly: {max(latency):.2f} s"


def test_memory_bomb_is_killed_inside_its_sandbox(cli, backend, tmp_path):
    sub = submission(tmp_path, "memory-bomb", "part3")
    with responsiveness() as latency:
        result, data = grade(cli, sub, tmp_path, "--part", "part1", "--part", "part3", "--timeout", "30")
    assert data["gradable"], data["error"]
    by_part = parts(data)
    assert by_part["part1"]["points"] == 0
    assert "exit status 137" in by_part["part1"]["script"]["output"]  # the OOM killer stopped it
    assert by_part["part3"]["points"] == 25  # part 3's own sandbox never noticed
    assert max(latency) < 3


def test_endless_output_is_capped(cli, backend, tmp_path):
    sub = submission(tmp_path, "endless-output")
    result, data = grade(cli, sub, tmp_path, "--part", "part1", "--max-output", "10000", "--timeout", "20")
    assert data["gradable"], data["error"]
    script = parts(data)["part1"]["script"]
    assert script["output_bytes"] <= 10000 and script["truncated"]
    assert script["duration"] < 5  # stopped by the cap, not by the timeout
    assert script["leftover_processes"] >= 1  # the writer to PID 1's stdout
    assert parts(data)["part1"]["points"] == 0


def test_script_that_never_ends_is_stopped_with_what_it_left(cli, backend, tmp_path, monkeypatch):
    """Also the path of a grader that may not signal root's processes: the kill goes through a helper."""
    import labcoat.grading.containment as grade_module

    def denied(pids: list[int]) -> None:
        raise PermissionError("a grader in the docker group, not root")

    monkeypatch.setattr(grade_module, "host_kill", denied)
    sub = submission(tmp_path, "never-ends")
    began = time.monotonic()
    result, data = grade(cli, sub, tmp_path, "--part", "part1", "--timeout", "5")
    assert data["gradable"], data["error"]
    script = parts(data)["part1"]["script"]
    assert script["timed_out"] and 5 <= script["duration"] < 12
    assert "recorded part1 largest_pid = 1" in script["output"]  # output before the timeout is kept
    assert script["leftover_processes"] >= 1  # the setsid daemon
    assert parts(data)["part1"]["points"] == 0
    assert time.monotonic() - began < 60


def test_no_network_and_no_docker_socket(cli, backend, tmp_path):
    sub = submission(tmp_path, "network")
    result, data = grade(cli, sub, tmp_path, "--part", "part1")
    assert data["gradable"], data["error"]
    output = parts(data)["part1"]["script"]["output"]
    assert "no connection to 1.1.1.1:53" in output and "no DNS" in output
    for sign in ("CONNECTED", "RESOLVED", "DOCKER SOCKET", "INTERFACE"):
        assert sign not in output, output
    assert parts(data)["part1"]["points"] == 0


def test_made_up_answers_score_nothing(cli, backend, tmp_path):
    sub = submission(tmp_path, "fake-answers")
    result, data = grade(cli, sub, tmp_path, "--part", "part1", "--part", "part3")
    assert result.exit_code == 1 and data["gradable"], data["error"]
    by_part = parts(data)
    assert by_part["part1"]["points"] == 0 and by_part["part3"]["points"] == 0
    assert all(c["status"] == "failed" for p in by_part.values() for c in p["checks"])


def test_faked_tools_are_caught_and_cost_only_their_part(cli, backend, tmp_path):
    """A fake `ps` would make part 1's checks agree with made-up answers: the part is not judged."""
    sub = submission(tmp_path, "fake-tools", "part2")
    result, data = grade(cli, sub, tmp_path, "--part", "part1", "--part", "part2")
    assert data["gradable"], data["error"]
    by_part = parts(data)
    assert by_part["part1"]["points"] == 0 and "/usr/bin/ps" in by_part["part1"]["reason"]
    state_checks_pass(by_part["part2"])  # graded in a fresh sandbox, with the image's own ps


def test_a_script_that_stops_its_sandbox_costs_only_its_part(cli, backend, tmp_path):
    sub = submission(tmp_path, "kill-all", "part2")
    result, data = grade(cli, sub, tmp_path, "--part", "part1", "--part", "part2")
    assert data["gradable"], data["error"]
    by_part = parts(data)
    assert by_part["part1"]["points"] == 0 and "left its sandbox unusable" in by_part["part1"]["reason"]
    state_checks_pass(by_part["part2"])  # graded in a fresh sandbox


# ----------------------------------------------------------------------------- ungradable, never zero


def test_docker_unreachable_is_ungradable(cli, backend, tmp_path, monkeypatch):
    sub = submission(tmp_path, None, "part1", quiz=True)
    gs, pl = tmp_path / "gradescope.json", tmp_path / "pl.json"
    with monkeypatch.context() as m:
        m.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")
        result, data = grade(cli, sub, tmp_path, "--part", "part1")
        again = cli("--content", str(ROOT), "grade", "5.3", "--submission", str(sub), "--part", "part1", "-q",
                    "--json", str(gs), "--format", "gradescope")
        cli("--content", str(ROOT), "grade", "5.3", "--submission", str(sub), "--part", "part1", "-q",
            "--json", str(pl), "--format", "prairielearn")
    assert result.exit_code == 5, result
    assert data["gradable"] is False and data["points"] is None and "Docker" in data["error"]
    assert again.exit_code == 5 and not gs.exists()  # no results.json: Gradescope records no score
    assert json.loads(pl.read_text())["gradable"] is False


def test_a_check_error_is_ungradable(cli, backend, tmp_path, monkeypatch):
    import labcoat.checking.run as run_module

    real = run_module.run_checks

    def failing(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        results = real(*args, **kwargs)
        results[0].checks[0].status = "error"
        results[0].checks[0].message = "OSError: the check could not read /proc"
        return results

    monkeypatch.setattr(run_module, "run_checks", failing)
    sub = submission(tmp_path, None, "part1")
    result, data = grade(cli, sub, tmp_path, "--part", "part1")
    assert result.exit_code == 5 and data["gradable"] is False
    assert "a check could not run" in data["error"] and data["score"] is None


def test_the_graders_own_timeout_is_ungradable(cli, backend, tmp_path):
    sub = submission(tmp_path, "never-ends")
    began = time.monotonic()
    result, data = grade(cli, sub, tmp_path, "--part", "part1", "--timeout", "120", "--grade-timeout", "12")
    assert result.exit_code == 5 and data["gradable"] is False
    assert "time limit" in data["error"]
    assert time.monotonic() - began < 45


# ----------------------------------------------------------------------------- a class


def test_batch_grades_every_folder_in_parallel(cli, backend, tmp_path, monkeypatch):
    summary_md = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary_md))
    batch = tmp_path / "class"
    batch.mkdir()
    shutil.copytree(submission(tmp_path, None, "part1", quiz=True), batch / "alice")
    shutil.copytree(SUBMISSIONS / "fake-answers", batch / "bob")
    shutil.copytree(SUBMISSIONS / "empty", batch / "carol")
    out = tmp_path / "grades"
    began = time.monotonic()
    result = cli("--content", str(ROOT), "grade", "5.3", "--batch", str(batch), "--jobs", "2", "--part", "part1",
                 "--out", str(out), "-q")
    assert result.exit_code == 0, result
    assert time.monotonic() - began < 120
    rows = {r["student"]: r for r in csv.DictReader((out / "summary.csv").open())}
    assert set(rows) == {"alice", "bob", "carol"}
    assert rows["alice"]["points"] == "40" and rows["alice"]["passed"] == "yes"  # part1 20 + quiz 20
    assert rows["bob"]["points"] == "0" and rows["carol"]["points"] == "0"
    assert all(r["gradable"] == "yes" for r in rows.values())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["count"] == 3 and summary["passed"] == 1 and summary["ungradable"] == 0
    assert (out / "histogram.png").read_bytes()[:4] == b"\x89PNG"
    for student in rows:
        assert json.loads((out / student / "results.json").read_text())["student"] == student
        ET.parse(out / student / "junit.xml")
    assert "class of 3" in summary_md.read_text()


# ----------------------------------------------------------------------------- interference


INTERFERENCE_PARTS = ("--part", "part1", "--part", "part2", "--part", "part3")
# Hostile submission -> the part it attacks (all run at once with honest ones beside them).
HOSTILE = {"disk-fill": "part2", "cpu-burn": "part1", "io-storm": "part1", "memory-pressure": "part1",
           "fork-bomb": "part1", "endless-output": "part1"}
# Free disk on the engine's disk may drop by at most this during the class: every sandbox at its
# disk limit at once (4 jobs x 3 sandboxes x 256 MiB) is 3 GiB, plus the honest files.
DISK_FLOOR_DROP = 4 << 30


# Part 2's cold/warm timing check depends on the host's load (docs/grading.md, "Limits of this version"):
# measured on this shared machine, the reference alone fails it in about one run of three.
LOAD_DEPENDENT = {("part2", "test_warm_read_is_faster")}


def _verdicts(data: dict, leave_out: set = frozenset()) -> dict[tuple[str, str], tuple[str, float]]:
    return {(p["part"], c["check"]): (c["status"], c["points"]) for p in data["parts"] for c in p["checks"]
            if (p["part"], c["check"]) not in leave_out}


def _free_disk() -> int:
    import os

    st = os.statvfs("/var/lib/docker" if Path("/var/lib/docker").exists() else "/")
    return st.f_bavail * st.f_frsize


def test_honest_submissions_score_as_alone_beside_a_hostile_class(cli, backend, tmp_path):
    """Issue 17: disk fill, CPU burn, I/O storm, memory pressure, fork bomb and output flood graded at the
    same time as honest submissions cost the honest ones nothing, and the host keeps its disk."""
    for folder in ("h1", "h2"):
        (tmp_path / folder).mkdir()
    honest = {"honest-full": submission(tmp_path / "h1", None, "part1", "part2", "part3", quiz=True),
              "honest-some": submission(tmp_path / "h2", None, "part1", "part3")}
    alone = {}
    for name, sub in honest.items():
        _, data = grade(cli, sub, sub.parent, *INTERFERENCE_PARTS, "--timeout", "20")
        assert data["gradable"], data["error"]
        alone[name] = data
    assert alone["honest-full"]["points"] in (80, 85)  # parts 1-3 (65, or 60 when the timing check lost) + quiz
    assert alone["honest-some"]["points"] == 45
    # One class: the honest ones in between the hostile ones, graded 4 at a time.
    batch = tmp_path / "class"
    order = ["disk-fill", "honest-full", "cpu-burn", "io-storm", "honest-some", "memory-pressure", "fork-bomb",
             "endless-output"]
    for i, name in enumerate(order):
        shutil.copytree(honest[name] if name in honest else SUBMISSIONS / name, batch / f"{i}-{name}")
    out = tmp_path / "grades"
    free = [_free_disk()]
    stop = threading.Event()

    def watch_disk() -> None:
        while not stop.wait(0.5):
            free.append(_free_disk())

    watcher = threading.Thread(target=watch_disk, daemon=True)
    watcher.start()
    began = time.monotonic()
    with responsiveness() as latency:
        try:
            result = cli("--content", str(ROOT), "grade", "5.3", "--batch", str(batch), "--jobs", "4",
                         *INTERFERENCE_PARTS, "--timeout", "20", "--grade-timeout", "300", "--out", str(out), "-q")
        finally:
            stop.set()
            watcher.join(5)
    took = time.monotonic() - began
    graded = {d.name.split("-", 1)[1]: json.loads((d / "results.json").read_text())
              for d in out.iterdir() if d.is_dir()}
    assert set(graded) == set(order)
    errors = {name: data["error"] for name, data in graded.items() if not data["gradable"]}
    assert result.exit_code == 0 and not errors, (result, errors)  # every submission was gradable
    for name in honest:
        data = graded[name]
        assert data["gradable"], (name, data["error"])
        assert _verdicts(data, LOAD_DEPENDENT) == _verdicts(alone[name], LOAD_DEPENDENT), name
        timing = {v for k, v in _verdicts(data).items() if k in LOAD_DEPENDENT}
        assert data["points"] - sum(p for _, p in timing) == \
            alone[name]["points"] - sum(p for k, (_, p) in _verdicts(alone[name]).items() if k in LOAD_DEPENDENT)
    for name, part in HOSTILE.items():
        data = graded[name]
        assert data["gradable"], (name, data["error"])
        assert parts(data)[part]["points"] == 0, name
    fill = parts(graded["disk-fill"])["part2"]
    assert fill["script"]["disk_exceeded"] and "disk limit of 256 MiB" in fill["reason"], fill
    assert min(free) >= free[0] - DISK_FLOOR_DROP, f"free disk fell by {(free[0] - min(free)) >> 20} MiB"
    assert max(latency) < 5, f"the host answered slowly: {max(latency):.2f} s"
    assert took < 240


# ----------------------------------------------------------------------------- shards


def test_the_same_seed_grades_the_reference_the_same_twice(cli, backend, tmp_path):
    """Issue 16: the full six-part reference graded twice with one --seed: every check's verdict and points agree.

    Only part 2's cold/warm timing check (LOAD_DEPENDENT) may differ: it measures the host's load.
    """
    sub = submission(tmp_path, None, "part1", "part2", "part3", "part4", "part5", "part6", quiz=True)
    runs = []
    for i in (1, 2):
        (tmp_path / f"run{i}").mkdir()
        result, data = grade(cli, sub, tmp_path / f"run{i}", "--seed", "4242")
        assert data["gradable"], (result, data.get("error"))
        runs.append(data)
    first, second = runs
    assert first["seed"] == second["seed"] and str(first["seed"]) == "4242"
    verdicts = _verdicts(first, LOAD_DEPENDENT)
    assert len(verdicts) >= 15 and {p["part"] for p in first["parts"]} == {f"part{k}" for k in range(1, 7)}
    assert verdicts == _verdicts(second, LOAD_DEPENDENT)
    timing = [sum(p for k, (_, p) in _verdicts(d).items() if k in LOAD_DEPENDENT) for d in runs]
    assert first["points"] - timing[0] == second["points"] - timing[1]
    assert first["quiz"]["points"] == second["quiz"]["points"] == 20
    # And it is the reference's score (a timing check lost to the load aside), not two equal failures.
    assert first["points"] - timing[0] == 135 - max(c["max_points"] for p in first["parts"] for c in p["checks"]
                                                    if (p["part"], c["check"]) in LOAD_DEPENDENT)


def _lab(*args: str) -> subprocess.Popen:
    import sys

    return subprocess.Popen([sys.executable, "-m", "labcoat", "--content", str(ROOT), "--backend", "docker", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _scores(out: Path) -> dict[str, tuple]:
    rows = {}
    for folder in sorted(p for p in out.iterdir() if p.is_dir()):
        data = json.loads((folder / "results.json").read_text())
        rows[data["student"]] = (data["gradable"], data["points"], data["seed"], _verdicts(data),
                                 data["quiz"]["points"] if data["quiz"] else None)
    return rows


def test_k8s_save_images_writes_archives_that_load_the_tags_the_pod_checks(cli, backend, tmp_path):
    """`--emit k8s --k8s-save-images`: DIR/images/sandbox.tar loads (docker load) the exact tag the grader's
    startup script checks before grading (tests/unit/test_grade_scale.py runs that script with a stand-in docker)."""
    import tarfile

    import yaml

    (tmp_path / "subs").mkdir()
    result = cli("--content", str(ROOT), "grade", "5.3", "--batch", str(tmp_path / "subs"), "--shard", "1/4",
                 "--emit", "k8s", str(tmp_path / "k8s"), "--k8s-save-images")
    assert result.exit_code == 0, result
    archive = tmp_path / "k8s" / "images" / "sandbox.tar"
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    script = yaml.safe_load((tmp_path / "k8s" / "job.yaml").read_text())["spec"]["template"]["spec"]["containers"][0]
    checked = next(line for line in script["command"][-1].splitlines() if line.startswith("for tag in "))
    tags = checked.removeprefix("for tag in ").removesuffix("; do").split()
    assert [t for m in manifest for t in m["RepoTags"]] == tags
    loaded = subprocess.run(["docker", "load", "-i", str(archive)], capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0 and tags[0] in loaded.stdout, loaded.stderr


def test_three_shards_merged_equal_the_unsharded_run(cli, backend, tmp_path):
    """Issue 16: the same class unsharded and in 3 shards (separate processes), merged: score for score."""
    batch = tmp_path / "class"
    batch.mkdir()
    shutil.copytree(submission(tmp_path, None, "part1", quiz=True), batch / "alice")
    shutil.copytree(SUBMISSIONS / "fake-answers", batch / "bob")
    shutil.copytree(SUBMISSIONS / "empty", batch / "carol")
    (batch / "dave").mkdir()
    shutil.copy(ROOT / "labs" / "5.3" / "decoys" / "part1-second-largest.sh", batch / "dave" / "part1.sh")
    (batch / "erin").mkdir()
    shutil.copy(ROOT / "labs" / "5.3" / "decoys" / "part1-host-view.sh", batch / "erin" / "part1.sh")
    shutil.copy(ALL_CORRECT, batch / "erin" / "quiz.yaml")
    common = ["grade", "5.3", "--batch", str(batch), "--part", "part1", "--seed", "2026", "-q"]
    procs = [_lab(*common, "--jobs", "2", "--out", str(tmp_path / "whole"))]
    procs += [_lab(*common, "--shard", f"{k}/3", "--out", str(tmp_path / f"shard-{k}")) for k in (1, 2, 3)]
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out.decode()[-2000:]
    shard_counts = [json.loads((tmp_path / f"shard-{k}" / "summary.json").read_text())["count"] for k in (1, 2, 3)]
    assert sum(shard_counts) == 5
    result = cli("grade", "merge", *[str(tmp_path / f"shard-{k}") for k in (1, 2, 3)], "--out",
                 str(tmp_path / "merged"), "-q")
    assert result.exit_code == 0, result
    whole, merged = _scores(tmp_path / "whole"), _scores(tmp_path / "merged")
    assert set(whole) == {"alice", "bob", "carol", "dave", "erin"}
    assert merged == whole  # every score, every check, the same seed per student
    assert whole["alice"][1] == 40 and whole["carol"][1] == 0 and 0 < whole["dave"][1] < 20
    a, b = (json.loads((tmp_path / name / "summary.json").read_text()) for name in ("whole", "merged"))
    for row in (*a["students"], *b["students"]):
        row.pop("duration")
    assert a == b
    assert (tmp_path / "merged" / "summary.csv").read_text().splitlines()[0] == \
        (tmp_path / "whole" / "summary.csv").read_text().splitlines()[0]
    # The class JUnit file: a suite per student, the same cases with the same outcomes (times aside).
    def cases(out: Path) -> list[tuple]:
        root = ET.parse(out / "junit.xml").getroot()
        return [(suite.get("name"), case.get("classname"), case.get("name"),
                 [child.tag for child in case if child.tag in ("failure", "error", "skipped")])
                for suite in root.findall("testsuite") for case in suite.findall("testcase")]

    assert cases(tmp_path / "merged") == cases(tmp_path / "whole")
    assert {suite for suite, *_ in cases(tmp_path / "whole")} == set(whole)
