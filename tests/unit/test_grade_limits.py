"""Grading limits without Docker: the CPU budget, the host preflight, the disk arguments, the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labcoat.backends.base import MachineSpec
from labcoat.backends.docker import disk_and_shares
from labcoat.content.catalog import Catalog
from labcoat.grading import capacity
from labcoat.grading.limits import Limits, sandbox_limits

ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS = ROOT / "labs" / "5.3" / "solutions"


@pytest.fixture(scope="module")
def lab():
    return Catalog.load(ROOT).lab("5.3")


@pytest.mark.parametrize(("cpus", "jobs", "boxes", "wanted", "each"), [
    (2, 1, 3, None, 0.66), (2, 2, 3, None, 0.33), (2, 1, 7, None, 0.28), (2, 1, 1, None, 2.0), (8, 2, 1, 1.0, 1.0), (2, 4, 1, 1.5, 0.5),
])
def test_cpu_cap_never_gives_more_than_the_host_has(cpus, jobs, boxes, wanted, each):
    cap = capacity.cpu_cap(cpus, jobs, boxes, wanted)
    assert cap == each
    assert cap * jobs * boxes <= cpus + 1e-9


def test_a_host_parts_runner_and_learner_containers_are_counted(lab):
    own = 1 + sum(1 for p in lab.parts if p.sandbox is not None)
    [(part5, count)] = capacity.host_part_containers(lab)
    assert part5.runs_on == "host" and count == 1 + part5.learner_docker.max_containers == 3
    assert capacity.grading_containers(lab) == own + 3
    assert capacity.grading_containers(lab, ["part1", "part2"]) == 1  # no host part graded: nothing more
    assert capacity.grading_containers(lab, ["part5"]) == 1 + 3


def _gs(lab, limits, started):
    from types import SimpleNamespace

    backend = SimpleNamespace(start=lambda spec, labels: started.append(spec) or SimpleNamespace(name="runner"),
                              image_id=lambda tag: "sha256:abc")
    return SimpleNamespace(lab=lab, limits=limits, backend=backend, session_id="s1", catalog=None,
                           labels=lambda part_id="": {"labcoat.session": "s1", "labcoat.part": part_id})


@pytest.mark.parametrize(("host", "jobs"), [(2, 1), (2, 2), (1, 1), (8, 3), (64, 1)])
def test_every_container_of_every_job_together_gets_at_most_the_hosts_cpus(lab, host, jobs, monkeypatch):
    """Full 5.3 (4 sandboxes + part 5's runner + its 2 learner containers) once asked ~4.5 CPUs on 2."""
    from labcoat.dockerproxy import check_create
    from labcoat.grading import host_parts
    from labcoat.grading.sandboxes import grade_spec

    monkeypatch.setattr(host_parts, "_image_tag", lambda gs: "labcoat/sandbox:t")
    monkeypatch.setattr("labcoat.runner.session.ensure_lab_image", lambda *a: "labcoat/sandbox:t")
    # What batch.py (per job) and grade.py (per submission) compute.
    limits = Limits(cpus=capacity.cpu_cap(host, jobs, capacity.grading_containers(lab), None))
    limits = Limits(cpus=capacity.cpu_cap(host, 1, capacity.grading_containers(lab), limits.cpus))
    sandboxes = [grade_spec(spec, "t", "1", "n", limits).cpus for spec in capacity.lab_sandboxes(lab)]
    started: list = []
    gs = _gs(lab, limits, started)
    part5 = next(p for p in lab.parts if p.runs_on == "host")
    host_parts._start_runner(gs, part5, "/tmp/sock", Path("/usr/bin/docker"), "main", "1")
    runner = started[0].cpus
    assert started[0].disk == lab.sandbox.disk_bytes  # the runner's files are capped too
    policy = host_parts.policy_for(None, gs.backend, lab, part5, limits)
    learner_body = {"Image": "labcoat/sandbox:latest", "HostConfig": {
        "Memory": 96 << 20, "MemorySwap": 96 << 20, "NetworkMode": "none", "NanoCpus": int(1e9)}}
    learner = check_create(policy, learner_body, {})["HostConfig"]["NanoCpus"] / 1e9  # asks the lab's 1 CPU
    learners = [learner] * part5.learner_docker.max_containers
    total = jobs * (sum(sandboxes) + runner + sum(learners))
    assert total <= host + 1e-9, (sandboxes, runner, learners)
    assert learner == min(1.0, limits.cpus)  # lowered to the fair share, not refused


def test_the_proxy_lowers_cpus_to_the_cap_and_caps_every_file():
    from labcoat.dockerproxy import Policy, Refused, check_create

    policy = Policy("t", frozenset({"t"}), 128 << 20, cpus=1.0, cpu_cap=0.25, max_file=256 << 20)
    hc = {"Memory": 96 << 20, "MemorySwap": 96 << 20, "NetworkMode": "none"}
    out = check_create(policy, {"Image": "t", "HostConfig": dict(hc)}, {})["HostConfig"]
    assert out["NanoCpus"] == int(0.25e9)  # nothing asked: the cap
    assert out["Ulimits"] == [{"Name": "fsize", "Soft": 256 << 20, "Hard": 256 << 20}]
    out = check_create(policy, {"Image": "t", "HostConfig": {**hc, "NanoCpus": int(0.1e9)}}, {})["HostConfig"]
    assert out["NanoCpus"] == int(0.1e9)  # less than the cap: kept
    out = check_create(policy, {"Image": "t", "HostConfig": {**hc, "CpuQuota": 100000, "CpuPeriod": 100000}},
                       {})["HostConfig"]
    assert out["CpuQuota"] == 25000 and not out.get("NanoCpus")  # docker refuses both at once
    with pytest.raises(Refused):  # more than the lab allows is still refused, whatever the cap
        check_create(policy, {"Image": "t", "HostConfig": {**hc, "NanoCpus": int(2e9)}}, {})


def test_the_lab_declares_its_disk_and_scratch(lab):
    assert lab.sandbox.disk_bytes == 256 << 20
    assert lab.sandbox.tmpfs_bytes == {"/tmp": 64 << 20, "/var/tmp": 16 << 20}
    assert lab.sandbox.read_only_root is False  # part 2 needs real page cache of a disk file
    assert len(capacity.lab_sandboxes(lab)) == 1 + sum(1 for p in lab.parts if p.sandbox is not None)  # the main one and one per part that has its own
    assert len(capacity.lab_sandboxes(lab, ["part1", "part2"])) == 1


def test_docker_arguments_bound_the_disk_and_set_weights():
    spec = MachineSpec(image="x", memory=64 << 20, disk=256 << 20, tmpfs={"/tmp": 64 << 20}, cpu_shares=512,
                       io_weight=100)
    args = disk_and_shares(spec, {"BlkioWeight": False, "CpuShares": True})
    assert args["ulimits"][0]["Name"] == "fsize" and args["ulimits"][0]["Hard"] == 256 << 20
    assert args["tmpfs"] == {"/tmp": f"rw,nosuid,nodev,exec,size={64 << 20},mode=1777"}
    assert args["cpu_shares"] == 512 and "blkio_weight" not in args  # the engine would discard it
    assert disk_and_shares(spec, {"BlkioWeight": True})["blkio_weight"] == 100
    assert disk_and_shares(MachineSpec(image="x", memory=1, read_only=True), {})["read_only"] is True


def test_preflight_names_what_is_short(lab, monkeypatch):
    monkeypatch.setattr(capacity, "free_disk", lambda path: 100 << 20)
    monkeypatch.setattr(capacity, "free_memory", lambda: 64 << 30)
    monkeypatch.setattr(capacity, "free_pids", lambda: 100_000)
    needs = capacity.preflight(lab, jobs=2)
    assert [n.name for n in needs if not n.ok] == ["disk"]
    # the main sandbox, one per part that has its own, and part 5's runner with its learner containers
    # (their layers share one disk limit)
    boxes = 1 + sum(1 for p in lab.parts if p.sandbox is not None) + 1
    assert needs[0].needed == 2 * boxes * (256 << 20) + capacity.DISK_FLOOR
    # memory: the sandboxes (512 + 256 + 128 + 384 MiB), part 5's runner (512) and its 2 learners (128 each)
    assert needs[1].needed == 2 * ((512 + 256 + 128 + 384) + 512 + 2 * 128 << 20) + capacity.MEMORY_FLOOR
    text = capacity.shortage(needs)
    assert f"short of disk: 100 MiB free, {2 * boxes * 256 + 1024} MiB needed" in text
    monkeypatch.setattr(capacity, "free_disk", lambda path: 1 << 40)
    assert capacity.shortage(capacity.preflight(lab, jobs=2)) is None
    monkeypatch.setattr(capacity, "free_pids", lambda: 500)
    assert "short of pids" in capacity.shortage(capacity.preflight(lab))


def test_grade_refuses_on_a_short_host_with_exit_5(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(capacity, "free_memory", lambda: 100 << 20)
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "part1.sh").write_text((SOLUTIONS / "part1.sh").read_text())
    out = tmp_path / "r.json"
    result = cli("--content", str(ROOT), "grade", "5.3", "--submission", str(sub), "--part", "part1",
                 "--json", str(out), "-q")
    assert result.exit_code == 5, result
    data = json.loads(out.read_text())
    assert data["gradable"] is False and "short of memory" in data["error"] and data["points"] is None
    batch = tmp_path / "class"
    (batch / "alice").mkdir(parents=True)
    result = cli("--content", str(ROOT), "grade", "5.3", "--batch", str(batch), "--out", str(tmp_path / "o"), "-q")
    assert result.exit_code == 5 and "short of memory" in result.stderr, result


def test_the_report_shows_each_sandboxs_limits(lab):
    limits = Limits(cpus=0.67)
    shown = sandbox_limits(lab, limits, supports={"BlkioWeight": False})
    assert set(shown) == {"main"} | {p.id for p in lab.parts if p.sandbox is not None}
    assert len(shown) > 1
    main = shown["main"]
    assert main["disk"] == 256 << 20 and "RLIMIT_FSIZE" in main["disk_enforced"]
    assert main["tmpfs"]["/tmp"] == 64 << 20 and main["cpus"] == 0.67
    assert main["io_weight"] is None and "not supported" in main["io_weight_enforced"]
    assert shown["part4"]["memory"] == 128 << 20


def test_io_weight_support_is_read_from_the_cgroups(tmp_path):
    from labcoat.backends.docker import io_weight_supported

    (tmp_path / "blkio").mkdir()
    assert io_weight_supported(1, tmp_path) is False  # mq-deadline: no blkio.weight (this host)
    (tmp_path / "blkio" / "blkio.bfq.weight").write_text("100\n")
    assert io_weight_supported(1, tmp_path) is True
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    assert io_weight_supported(2, tmp_path) is True
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu memory pids\n")
    assert io_weight_supported(2, tmp_path) is False


def test_leftovers_are_stopped_even_when_the_freezer_gives_up(monkeypatch):
    """Under heavy load runc may answer "unable to freeze": kill round after round instead."""
    from types import SimpleNamespace

    from labcoat.grading import containment as g

    class Api:
        def pause(self, cid):
            raise RuntimeError("OCI runtime pause failed: unable to freeze")

        def unpause(self, cid):
            raise AssertionError("never paused, never unpaused")

    rounds = iter([{1: 1, 50: 5, 51: 6}, {1: 1, 50: 5, 51: 6}, {1: 1, 52: 7}, {1: 1}, {1: 1}])
    monkeypatch.setattr(g, "sandbox_processes", lambda backend, machine: next(rounds))
    killed: list[int] = []
    monkeypatch.setattr(g, "host_kill", killed.extend)
    monkeypatch.setattr(g, "_starttime", lambda pid: None)  # all gone afterwards
    monkeypatch.setattr(g.time, "sleep", lambda s: None)
    backend = SimpleNamespace(client=SimpleNamespace(api=Api()))
    machine = SimpleNamespace(id="c", name="sandbox")
    assert g.stop_leftovers(backend, machine, {1: 1}, {}) == 3
    assert killed == [50, 51, 52]


def test_the_engines_layer_quota_is_used_where_it_exists_and_dropped_where_it_is_refused():
    from types import SimpleNamespace

    from docker.errors import APIError

    from labcoat.backends.docker import DockerBackend, storage_quota_supported

    assert storage_quota_supported({"Driver": "overlay2", "DriverStatus": [["Backing Filesystem", "xfs"]]})
    assert not storage_quota_supported({"Driver": "overlay2", "DriverStatus": [["Backing Filesystem", "extfs"]]})
    assert not storage_quota_supported({"Driver": "btrfs"})  # its size counts the image's files too
    spec = MachineSpec(image="x", memory=64 << 20, disk=256 << 20)
    assert disk_and_shares(spec, {"StorageOptSize": True})["storage_opt"] == {"size": str(256 << 20)}
    assert "storage_opt" not in disk_and_shares(spec, {"StorageOptSize": False})
    assert "storage_opt" not in disk_and_shares(MachineSpec(image="x", memory=1, disk=1, read_only=True),
                                                {"StorageOptSize": True})
    runs = []

    def run(**kwargs):
        runs.append(kwargs)
        if "storage_opt" in kwargs:  # xfs mounted without pquota
            raise APIError("--storage-opt is supported only for overlay over xfs with 'pquota' mount option")
        return SimpleNamespace(id="c1", name="n", labels={}, status="running")

    backend = DockerBackend()
    backend.__dict__["client"] = SimpleNamespace(containers=SimpleNamespace(run=run))
    backend.__dict__["supports"] = {"StorageOptSize": True}
    backend._machine = lambda container: container  # type: ignore[method-assign]
    backend.start(spec, {})
    assert [("storage_opt" in r) for r in runs] == [True, False]  # refused: started without, and remembered
    assert backend.supports["StorageOptSize"] is False
    backend.start(spec, {})
    assert "storage_opt" not in runs[-1] and len(runs) == 3
