"""Disk and CPU bounds on a real engine: a learner's sandbox stops writing near its disk limit (the
disk watcher), and a grading sandbox carries its per-file limit, tmpfs and CPU cap."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from labcoat.backends import DEFAULT_BACKEND, get_backend
from labcoat.backends.base import MachineSpec
from labcoat.content.catalog import Catalog
from labcoat.runner import diskwatch
from labcoat.runner.session import L_OWNER, ensure_lab_image, labels_for, owner

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parents[2]
MiB = 1 << 20


@pytest.fixture
def backend():
    b = get_backend(os.environ.get("LABCOAT_BACKEND") or DEFAULT_BACKEND)
    yield b
    for machine in b.find({L_OWNER: owner()}):
        b.remove(machine)


def _wait(what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(0.2)
    return what()


def _soft_fsize(backend, machine) -> str:
    out = backend.run(machine, ["sh", "-c", "grep 'Max file size' /proc/1/limits"]).stdout.split()
    return out[3]  # Max file size SOFT HARD bytes


def test_a_learners_sandbox_stops_writing_near_its_disk_limit_and_writes_again_once_under(backend, monkeypatch):
    if backend.supports.get("StorageOptSize"):
        pytest.skip("this engine has a layer quota (--storage-opt size): the watcher is not used here")
    monkeypatch.delenv("LABCOAT_DISKWATCH", raising=False)
    catalog = Catalog.load(ROOT)
    tag = ensure_lab_image(catalog, backend, "sandbox", lambda m, f: None)
    limit = 64 * MiB
    box = backend.start(MachineSpec(image=tag, memory=256 * MiB, disk=limit, name=f"labcoat-disk-{owner()}"),
                        labels_for("lab", "9.9"))
    assert backend.inspect(box)["HostConfig"]["Ulimits"] == [{"Name": "fsize", "Soft": limit, "Hard": limit}]
    assert diskwatch.ensure_running(backend) is True  # what lab start / check / status do
    assert _wait(lambda: diskwatch.disk_of(box.id)), "the disk watcher never measured the sandbox"
    # 2 x 48 MiB files (each under the per-file limit, together over it), then more, as a learner's shell would
    began = time.monotonic()
    run = backend.run(box, ["bash", "-c", "for i in $(seq 40); do dd if=/dev/zero of=/root/f$i bs=1M count=48 "
                                          "status=none || exit 7; sleep 0.2; done"], timeout=120)
    took = time.monotonic() - began
    assert run.exit_status == 7, run  # a dd was stopped (File size limit exceeded): the loop never finished
    written = backend.inspect(box, size=True)["SizeRw"]
    # Stopped within a round or two of the watcher: far from the 40 x 48 MiB the loop would write.
    assert limit < written <= limit + 6 * 48 * MiB, (written >> 20, took)
    entry = _wait(lambda: (diskwatch.disk_of(box.id) or {}).get("full") and diskwatch.disk_of(box.id))
    assert entry and entry["full"] and entry["limit"] == limit
    assert _soft_fsize(backend, box) == "0"
    [line] = diskwatch.full_sandboxes([box])
    assert "is full" in line and "delete files" in line
    backend.run(box, ["sh", "-c", "rm -f /root/f*"])
    assert _wait(lambda: not (diskwatch.disk_of(box.id) or {"full": True})["full"]), "never back under the limit"
    assert _wait(lambda: _soft_fsize(backend, box) == str(limit))  # every process has its limit back
    again = backend.run(box, ["dd", "if=/dev/zero", "of=/root/ok", "bs=1M", "count=8", "status=none"])
    assert again.exit_status == 0, again


def test_a_grading_sandbox_carries_its_disk_tmpfs_and_cpu_limits(backend):
    from labcoat.grading.capacity import cpu_cap, grading_containers, host_cpus
    from labcoat.grading.limits import Limits
    from labcoat.grading.sandboxes import GradeSession

    catalog = Catalog.load(ROOT)
    lab = catalog.lab("5.3")
    limits = Limits(cpus=cpu_cap(host_cpus(), 2, grading_containers(lab)))
    gs = GradeSession(backend, catalog, lab, owner(), "disktest", "1", "alice", limits)
    try:
        sandbox = gs.start_one(lab.sandbox, "")
        host = backend.inspect(sandbox.machine)["HostConfig"]
        disk = lab.sandbox.disk_bytes
        assert {"Name": "fsize", "Soft": disk, "Hard": disk} in host["Ulimits"]
        assert set(host["Tmpfs"]) == set(lab.sandbox.tmpfs_bytes)
        assert f"size={lab.sandbox.tmpfs_bytes['/tmp']}" in host["Tmpfs"]["/tmp"]
        assert host["NanoCpus"] == int(limits.cpus * 1e9) and 0 < limits.cpus <= host_cpus() / 2
        assert host["CapDrop"] == ["ALL"] and host["NetworkMode"] == "none"
        # The kernel agrees: the sandbox's processes have the per-file limit, /tmp is a tmpfs of that size.
        out = backend.run(sandbox.machine, ["sh", "-c", "grep 'Max file size' /proc/self/limits | awk '{print $4}';"
                                            " df -B1 --output=fstype,size /tmp | tail -1"])
        soft, fstype, size = out.stdout.split()
        assert int(soft) == disk
        assert fstype == "tmpfs" and int(size) == lab.sandbox.tmpfs_bytes["/tmp"]
    finally:
        gs.remove()


def test_a_host_parts_learner_containers_count_against_the_disk_limit(cli, backend, tmp_path):
    """Part 5's script fills a container its `docker` started: stopped at the lab's disk limit, that part 0."""
    import json

    sub = tmp_path / "filler"
    sub.mkdir()
    (sub / "part5.sh").write_text(
        "docker run -d --name lab53-part5 --memory 96m --memory-swap 96m --network none labcoat/sandbox:latest "
        "sleep infinity\n"
        "docker exec lab53-part5 sh -c 'for i in $(seq 40); do dd if=/dev/zero of=/root/f$i bs=1M count=100; done'\n")
    out = tmp_path / "r.json"
    cli("--content", str(ROOT), "--backend", "docker", "grade", "5.3", "--submission", str(sub), "--part", "part5",
        "--no-quiz", "--json", str(out), "-q")
    data = json.loads(out.read_text())
    assert data["gradable"], data["error"]
    [part] = data["parts"]
    assert part["points"] == 0 and part["script"]["disk_exceeded"] is True, part
    assert "disk limit of 256 MiB" in part["script"]["note"], part["script"]
    assert not backend.find({"labcoat.kind": "grade", "labcoat.grader": owner()})  # nothing left behind
