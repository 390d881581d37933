"""The disk bound of a learner's sandboxes (runner/diskwatch.py), against the fake backend (no Docker)."""

from __future__ import annotations

import json
import time

import pytest
from fakes import FakeBackend

from labcoat.backends.base import MachineSpec
from labcoat.runner import diskwatch
from labcoat.runner.session import labels_for

pytestmark = pytest.mark.usefixtures("watcher_on")  # tests/unit/conftest.py

MiB = 1 << 20


class LayeredBackend(FakeBackend):
    """A fake engine whose containers have a writable layer of `used` bytes and an fsize ulimit."""

    watches_layers = True

    def __init__(self) -> None:
        super().__init__()
        self.used: dict[str, int] = {}
        self.quota: dict[str, str] = {}

    def limits(self, machine):
        return {"disk": {"per_file": self.specs[machine.id].disk, "quota": self.quota.get(machine.id)}}

    def inspect(self, machine, *, size=False):
        info = super().inspect(machine)
        info["GraphDriver"] = {"Data": {"UpperDir": "/nonexistent/upper"}}  # not readable: SizeRw is asked
        if size:
            info["SizeRw"] = self.used.get(machine.id, 0)
        return info


def _sandbox(backend, disk=256 * MiB, kind="lab"):
    return backend.start(MachineSpec(image="x", memory=64 * MiB, disk=disk), labels_for(kind, "9.9"))


def _restricts(backend, machine):
    return [argv[-1] for argv in backend.argvs(machine) if argv[:2] == ["sh", "-c"] and argv[3] == "labcoat-disk"]


def test_past_the_limit_every_process_is_stopped_from_growing_files_until_back_under_it():
    backend = LayeredBackend()
    box = _sandbox(backend)
    watcher = diskwatch.Watcher(backend)
    backend.used[box.id] = 100 * MiB
    state = watcher.round()
    assert state["sandboxes"][box.id] == {"name": box.name, "used": 100 * MiB, "limit": 256 * MiB, "full": False,
                                          "since": None}
    assert _restricts(backend, box) == []
    backend.used[box.id] = 400 * MiB  # 2 x 200 MiB: each file under the per-file limit, together over
    entry = watcher.round()["sandboxes"][box.id]
    assert entry["full"] is True and entry["since"] is not None
    assert _restricts(backend, box) == ["0"]  # soft RLIMIT_FSIZE 0 for every process in it
    watcher.round()
    assert _restricts(backend, box) == ["0", "0"]  # again: a `lab shell` started since is caught too
    backend.used[box.id] = 200 * MiB  # the learner deleted files
    assert watcher.round()["sandboxes"][box.id]["full"] is False
    assert _restricts(backend, box)[-1] == str(256 * MiB)  # the full per-file limit back
    watcher.round()
    assert len(_restricts(backend, box)) == 3  # nothing more to do while under the limit


def test_only_this_owners_running_lab_sandboxes_with_a_limit_are_watched():
    backend = LayeredBackend()
    mine = _sandbox(backend)
    grading = _sandbox(backend, kind="grade")  # grading has its own watch (grading/containment.DiskWatch)
    unlimited = _sandbox(backend, disk=None)
    quota = _sandbox(backend)
    backend.quota[quota.id] = "256m"  # the engine bounds it: nothing to do here
    stopped = _sandbox(backend)
    backend.machines[stopped.id].status = "exited"
    for m in (mine, grading, unlimited, quota, stopped):
        backend.used[m.id] = 1 << 40
    watcher = diskwatch.Watcher(backend)
    assert set(watcher.round()["sandboxes"]) == {mine.id}
    assert watcher.idle == 0
    for m in list(backend.machines.values()):
        backend.remove(m)
    watcher.round()
    assert watcher.idle == 1 and watcher.limits == {}  # the watcher leaves after IDLE_ROUNDS of this


def test_the_state_file_is_read_while_fresh_and_says_why_writes_fail(tmp_path):
    assert diskwatch.read_state() is None and diskwatch.disk_of("abc") is None
    entry = {"name": "sb", "used": 300 * MiB, "limit": 256 * MiB, "full": True, "since": time.time()}
    diskwatch._write_state({"updated": time.time(), "sandboxes": {"abc": entry}})
    assert diskwatch.disk_of("abc") == entry
    from labcoat.backends.base import Machine

    [line] = diskwatch.full_sandboxes([Machine(id="abc", name="sb", labels={}), Machine(id="other", name="o", labels={})])
    assert "sb is full" in line and "300 MiB" in line and "256 MiB" in line and "delete files" in line
    data = json.loads(diskwatch.state_path().read_text())
    data["updated"] = time.time() - 2 * diskwatch.STALE  # the watcher died: nothing is claimed
    diskwatch.state_path().write_text(json.dumps(data))
    assert diskwatch.disk_of("abc") is None


def test_the_watcher_starts_only_for_engines_with_layers_and_when_not_turned_off(monkeypatch):
    spawned = []
    monkeypatch.setattr("subprocess.Popen", lambda argv, **kw: spawned.append((argv, kw["env"])))
    assert diskwatch.ensure_running(FakeBackend()) is False  # no layers to measure (e.g. the local backend)
    monkeypatch.setenv("LABCOAT_DISKWATCH", "0")
    assert diskwatch.ensure_running(LayeredBackend()) is False
    monkeypatch.delenv("LABCOAT_DISKWATCH")
    assert diskwatch.ensure_running(LayeredBackend()) is True
    [(argv, env)] = spawned
    assert argv[-3:] == ["-m", "labcoat.runner.diskwatch", "serve"] and env["LABCOAT_BACKEND"] == "fake"


def test_a_running_watcher_is_not_started_twice(monkeypatch):
    import fcntl

    spawned = []
    monkeypatch.setattr("subprocess.Popen", lambda argv, **kw: spawned.append(argv))
    from labcoat.paths import state_dir

    with open(state_dir() / diskwatch.LOCK_FILE, "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert diskwatch._lock_held() is True
        assert diskwatch.ensure_running(LayeredBackend()) is True and spawned == []


@pytest.mark.parametrize(("host", "limit"), [
    ({"Ulimits": [{"Name": "fsize", "Soft": 5, "Hard": 5}]}, 5),
    ({"Ulimits": [{"Name": "fsize", "Soft": 5, "Hard": 5}], "StorageOpt": {"size": "5"}}, None),
    ({}, None),
])
def test_the_limit_is_the_sandboxs_own(host, limit):
    from labcoat.backends.docker import disk_limits

    assert diskwatch.disk_limit(disk_limits(host)) == limit  # as DockerBackend.limits reads the HostConfig
    assert diskwatch.disk_limit({"memory_limit": 1}) is None  # a backend that says nothing of its disk
