"""`lab doctor`'s checks that need no engine."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import pytest

from labcoat.cli import doctor


def _app(*runs_on: str) -> SimpleNamespace:
    parts = [SimpleNamespace(id=f"part{i + 1}", runs_on=where) for i, where in enumerate(runs_on)]
    return SimpleNamespace(catalog=SimpleNamespace(labs={"9.9": SimpleNamespace(id="9.9", parts=parts)}))


def test_a_host_part_without_the_docker_client_is_a_warning_with_the_fix(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    [check] = doctor._host_parts_check(_app("sandbox", "host"))
    assert check["status"] == "warn" and "9.9 part2" in check["detail"]
    assert "apt-get install docker.io" in check["fix"]


def test_the_client_is_reported_when_present_and_not_asked_for_without_host_parts(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/docker" if name == "docker" else None)
    [check] = doctor._host_parts_check(_app("host"))
    assert check["status"] == "ok"
    assert doctor._host_parts_check(_app("sandbox", "sandbox")) == []


# ----------------------------------------------------------------------------- limits and grading lines

def _limits_app(supports):
    from pathlib import Path

    from fakes import FakeBackend

    from labcoat.content.catalog import Catalog

    class Backend(FakeBackend):
        @property
        def supports(self):
            return supports

    return SimpleNamespace(backend=Backend(), catalog=Catalog.load(Path(__file__).resolve().parents[2]))


@pytest.fixture
def roomy_host(monkeypatch):
    from labcoat.grading import capacity

    monkeypatch.setattr(capacity, "free_disk", lambda path: 100 << 30)
    monkeypatch.setattr(capacity, "free_memory", lambda: 16 << 30)
    monkeypatch.setattr(capacity, "free_pids", lambda: 30_000)
    monkeypatch.setattr(capacity, "host_cpus", lambda: 2)
    monkeypatch.setattr(doctor, "io_scheduler", lambda path: ("vda", "mq-deadline", ["none", "mq-deadline", "bfq"]))


EXT4 = {"Driver": "overlay2", "DriverStatus": [["Backing Filesystem", "extfs"]], "DockerRootDir": "/"}


def test_doctor_says_how_the_disk_cpu_and_io_are_bounded_here(roomy_host):
    limits, grading = doctor._limit_checks(_limits_app({"BlkioWeight": False, "StorageOptSize": False}), EXT4)
    assert limits["status"] == "ok" and limits["lab"] == "5.3"
    detail = limits["detail"]
    assert "main, part3, part4, part6: disk 256 MiB (each file: RLIMIT_FSIZE), tmpfs /tmp 64 MiB" in detail
    assert "no engine quota here (overlay2 on extfs" in detail and "disk watcher" in detail
    assert limits["disk_bound"] == "watched"
    # 4 sandboxes + part 5's runner and 2 learner containers on 2 CPUs: 2/7, rounded down
    assert limits["grading_containers"] == 7 and limits["grading_cpus"] == 0.28
    assert "--cpus 0.28 per container (7 per submission" in detail
    assert "io_weight NOT applied: vda uses the mq-deadline I/O scheduler" in detail
    assert limits["io_weight"] is False and limits["io_scheduler"] == "mq-deadline"
    assert "bfq is available on vda" in limits["fix"]
    assert grading["status"] == "ok" and grading["detail"].startswith("can grade lab 5.3")
    assert "3 container(s) of host parts" in grading["detail"]


def test_doctor_names_the_engines_quota_and_the_io_weight_where_they_apply(roomy_host):
    xfs = {**EXT4, "DriverStatus": [["Backing Filesystem", "xfs"]]}
    limits, _ = doctor._limit_checks(_limits_app({"BlkioWeight": True, "StorageOptSize": True}), xfs)
    assert "the engine's quota on the writable layer (--storage-opt size; overlay2 on xfs)" in limits["detail"]
    assert limits["disk_bound"] == "quota" and "io_weight applied" in limits["detail"] and limits["fix"] == ""


def test_doctor_warns_when_the_host_is_short_for_grading(roomy_host, monkeypatch):
    from labcoat.grading import capacity

    monkeypatch.setattr(capacity, "free_memory", lambda: 1 << 30)
    _, grading = doctor._limit_checks(_limits_app({}), EXT4)
    assert grading["status"] == "warn" and "short of memory" in grading["detail"]
    assert "exit 5" in grading["fix"]


def test_the_io_scheduler_is_read_from_sysfs(tmp_path, monkeypatch):
    import os

    dev = os.stat(tmp_path).st_dev
    block = tmp_path / "sys" / "dev" / "block" / f"{os.major(dev)}:{os.minor(dev)}"
    (block / "queue").mkdir(parents=True)
    (block / "queue" / "scheduler").write_text("none [mq-deadline] kyber bfq\n")
    assert doctor.io_scheduler(str(tmp_path), tmp_path / "sys") == (block.name, "mq-deadline",
                                                                     ["none", "mq-deadline", "kyber", "bfq"])
    assert doctor.io_scheduler(str(tmp_path), tmp_path / "nothing") is None
