"""`lab grade` of part 5 (`runs_on: host`): the script's docker reaches the policy proxy, never the engine.

The reference solution scores all of part 5's points; the part's decoy does not; hostile
scripts (tests/fixtures/submissions/docker-*) are refused with the reason the docker CLI
prints, and leave nothing behind: every container the proxy created carries the grading
session's labels and is gone afterwards (the `backend` fixture checks it).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from labcoat.backends.docker import DockerBackend
from labcoat.runner.session import owner

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parents[2]
SUBMISSIONS = ROOT / "tests" / "fixtures" / "submissions"
LAB = ROOT / "labs" / "5.3"


@pytest.fixture
def backend() -> Iterator[DockerBackend]:
    """The engine; afterwards, nothing of this grader's may be left on it (removed, then reported)."""
    b = DockerBackend()
    yield b
    left = {m.name: b.remove(m) for m in b.find({"labcoat.kind": "grade", "labcoat.grader": owner()})}
    assert not left, f"grading left containers behind: {sorted(left)}"


def grade_part5(cli, folder: Path, tmp_path: Path, *args: str) -> tuple[object, dict]:  # noqa: ANN001
    out = tmp_path / f"{folder.name}.json"
    result = cli("--content", str(ROOT), "--backend", "docker", "grade", "5.3", "--submission", str(folder),
                 "--part", "part5", "--no-quiz", "--json", str(out), "-q", *args)
    assert out.exists(), result
    data = json.loads(out.read_text())
    assert data["gradable"], data["error"]
    return result, data["parts"][0]


def folder_with(tmp_path: Path, name: str, script: Path | str) -> Path:
    dest = tmp_path / name
    dest.mkdir()
    text = script.read_text() if isinstance(script, Path) else script
    (dest / "part5.sh").write_text(text)
    return dest


def test_reference_part5_scores_every_point_through_the_proxy(cli, backend, tmp_path):
    result, part = grade_part5(cli, folder_with(tmp_path, "reference", LAB / "solutions" / "part5.sh"), tmp_path)
    assert result.exit_code == 0, result
    assert part["status"] == "passed" and part["points"] == part["max_points"] == 15, part
    assert part["script"]["ran"] and part["script"]["exit_status"] == 0
    assert "refused" not in (part["script"]["note"] or "")  # the reference needs nothing the policy refuses


def test_part5_decoy_fails_through_the_proxy(cli, backend, tmp_path):
    decoy = folder_with(tmp_path, "decoy", LAB / "decoys" / "part5-wrong-container.sh")
    result, part = grade_part5(cli, decoy, tmp_path)
    assert result.exit_code == 1 and part["status"] == "failed" and part["points"] < 15, part
    checks = {c["check"]: c["status"] for c in part["checks"]}
    assert checks["test_container_has_the_stated_limit"] == "passed"  # it started the right container
    assert checks["test_recorded_limit_and_usage"] == "failed"  # but read the lab sandbox's limit


@pytest.mark.parametrize(("name", "refusals"), [
    ("docker-privileged", ["labcoat policy: container creation refused: --privileged"]),
    ("docker-bind-root", ["container creation refused: mounts and volumes"]),
    ("docker-host-pid", ["container creation refused: --pid host", "network 'host': only --network none"]),
    ("docker-pull", ["labcoat policy: image pull refused", "image 'busybox': only labcoat/sandbox:latest",
                     "image build refused", "image load refused"]),
])
def test_hostile_docker_commands_are_refused_with_their_reason(cli, backend, tmp_path, name, refusals):
    _, part = grade_part5(cli, folder_with(tmp_path, name, SUBMISSIONS / name / "part5.sh"), tmp_path)
    output = part["script"]["output"]
    for words in refusals:
        assert words in output, output
    assert not [line for line in output.splitlines() if line.startswith(("CREATED", "PULLED", "RAN", "BUILT",
                                                                          "LOADED"))], output
    assert part["points"] == 0 and part["status"] == "failed"
    assert "the docker policy refused" in part["script"]["note"]


def test_a_thousand_containers_stop_at_the_cap(cli, backend, tmp_path):
    name = "docker-many-containers"
    _, part = grade_part5(cli, folder_with(tmp_path, name, SUBMISSIONS / name / "part5.sh"), tmp_path,
                          "--timeout", "240")
    output = part["script"]["output"]
    assert "created 2\n" in output, output  # learner_docker.max_containers of labs/5.3.yaml
    assert "at most 2 containers at a time" in output or "already created" in output, output
    assert not part["script"]["timed_out"], part["script"]  # all 1000 attempts were made, and refused


def test_a_foreign_container_is_out_of_reach(cli, backend, tmp_path):
    client = backend.client
    victim_name = f"labcoat-victim-{owner()}"
    victim = client.containers.run("labcoat/sandbox:latest", ["sleep", "300"], name=victim_name, detach=True,
                                   mem_limit=32 << 20, memswap_limit=32 << 20, network_mode="none",
                                   labels={"labcoat.owner": owner(), "labcoat.managed": "1"})
    try:
        text = (SUBMISSIONS / "docker-foreign-exec" / "part5.sh").read_text().replace("VICTIM_NAME", victim_name)
        _, part = grade_part5(cli, folder_with(tmp_path, "foreign", text), tmp_path)
        output = part["script"]["output"]
        assert f"No such container: {victim_name}" in output, output
        assert "`docker container prune` refused" in output, output
        assert victim_name not in output.replace(f"No such container: {victim_name}", ""), output  # not in docker ps
        for word in ("EXECUTED", "INSPECTED", "STOPPED", "PRUNED"):
            assert word not in output, output
        victim.reload()
        assert victim.status == "running" and not victim.attrs.get("ExecIDs"), victim.attrs.get("ExecIDs")
    finally:
        victim.remove(force=True)


def test_what_the_proxy_created_is_labelled_and_removed(cli, backend, tmp_path, monkeypatch):
    """Watch the engine while the reference is graded: the learner's container has the session's labels."""
    import threading

    seen: dict[str, dict] = {}
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            for c in backend.client.containers.list(all=True, filters={"label": ["labcoat.via"]}):
                if c.labels.get("labcoat.grader") == owner():
                    seen[c.id] = {"labels": c.labels, "host": c.attrs["HostConfig"]}
            stop.wait(0.2)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        grade_part5(cli, folder_with(tmp_path, "reference", LAB / "solutions" / "part5.sh"), tmp_path)
    finally:
        stop.set()
        thread.join(5)
    assert seen, "the learner's container was never seen"
    for info in seen.values():
        labels, host = info["labels"], info["host"]
        assert labels["labcoat.kind"] == "grade" and labels["labcoat.learner-name"] == "lab53-part5"
        assert labels["labcoat.session"] and labels["labcoat.via"] == labels["labcoat.session"]
        assert host["Privileged"] is False and host["CapDrop"] == ["ALL"] and host["NetworkMode"] == "none"
        assert host["Memory"] == host["MemorySwap"] == 96 << 20 and host["PidsLimit"] == 64
    for cid in seen:
        assert not backend.client.containers.list(all=True, filters={"id": cid}), "a learner container was left"
    shutil.rmtree(tmp_path / "reference", ignore_errors=True)
