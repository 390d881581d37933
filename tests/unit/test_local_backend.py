"""The local backend: a memory cgroup on this host instead of a container.

Most tests run against a FAKE cgroup root in tmp_path (a plain folder shaped like cgroup
v1 or v2). A plain folder is not cgroupfs: the kernel creates interface files such as
memory.swap.max when a cgroup is made and lets `rmdir` remove a cgroup that still shows
them, so the tests create / delete those files where the kernel would. The last tests
use the real memory cgroup and need root and cgroup v1 (this project's CI host).
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path

import pytest

from labcoat.backends import get_backend, local
from labcoat.backends.base import Machine, MachineSpec
from labcoat.backends.local import LocalBackend
from labcoat.errors import EnvironmentProblem, UsageProblem

MiB = 1 << 20
LABELS = {"labcoat.owner": "pytest", "labcoat.lab": "1.1", "labcoat.kind": "lab"}


def _spec(name: str | None, memory: int = 64 * MiB) -> MachineSpec:
    return MachineSpec(image="host", memory=memory, name=name)


def _registry() -> Path:
    return Path(os.environ["LABCOAT_STATE"]) / "local-machines"


def _like_rmdir_on_cgroupfs(cg: Path) -> None:
    """Delete the interface files, which cgroupfs would not count against rmdir."""
    for child in cg.iterdir():
        child.unlink()


@pytest.fixture
def as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local.os, "geteuid", lambda: 0)


def _fake_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cgroup"
    root.mkdir()
    monkeypatch.setenv("LABCOAT_CGROUP_ROOT", str(root))
    # The module read LABCOAT_CGROUP_ROOT when it was imported; point it at the fake root too.
    monkeypatch.setattr(local, "CGROUP_ROOT", root)
    return root


@pytest.fixture
def fake_v2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, as_root: None) -> Path:
    root = _fake_root(tmp_path, monkeypatch)
    (root / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma misc\n")
    return root


@pytest.fixture
def fake_v1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, as_root: None) -> Path:
    root = _fake_root(tmp_path, monkeypatch)
    (root / "memory").mkdir()
    return root


# ----------------------------------------------------------------------------- start (fake cgroup)


def test_start_v2_writes_memory_max_and_no_swap(fake_v2: Path) -> None:
    cg = fake_v2 / "labcoat.lab-1"
    cg.mkdir()
    (cg / "memory.swap.max").write_text("max\n")  # what the kernel shows in a new cgroup
    machine = LocalBackend().start(_spec("lab-1"), LABELS)
    assert (cg / "memory.max").read_text() == str(64 * MiB) == "67108864"
    assert (cg / "memory.swap.max").read_text() == "0"
    assert (machine.id, machine.name, machine.labels, machine.status) == ("lab-1", "lab-1", LABELS, "running")
    assert machine.is_running
    assert machine.handle == {"id": "lab-1", "name": "lab-1", "labels": LABELS, "cgroup": str(cg), "version": 2}
    assert json.loads((_registry() / "lab-1.json").read_text()) == machine.handle


def test_start_v2_without_swap_accounting_sets_only_memory_max(fake_v2: Path) -> None:
    LocalBackend().start(_spec("lab-1", memory=256 * MiB), LABELS)
    cg = fake_v2 / "labcoat.lab-1"
    assert sorted(p.name for p in cg.iterdir()) == ["memory.max"]
    assert (cg / "memory.max").read_text() == "268435456"


def test_start_v1_sets_memory_and_memory_plus_swap_equal(fake_v1: Path) -> None:
    cg = fake_v1 / "memory" / "labcoat.lab-1"
    cg.mkdir()
    (cg / "memory.memsw.limit_in_bytes").write_text("9223372036854771712\n")
    machine = LocalBackend().start(_spec("lab-1", memory=32 * MiB), LABELS)
    assert (cg / "memory.limit_in_bytes").read_text() == "33554432"
    assert (cg / "memory.memsw.limit_in_bytes").read_text() == "33554432"
    assert machine.handle["version"] == 1
    assert machine.handle["cgroup"] == str(cg)


def test_v2_wins_when_the_root_has_the_memory_controller(fake_v2: Path) -> None:
    (fake_v2 / "memory").mkdir()  # a hybrid host that also mounts v1
    machine = LocalBackend().start(_spec("lab-1"), LABELS)
    assert machine.handle["cgroup"] == str(fake_v2 / "labcoat.lab-1")


def test_v2_without_the_memory_controller_is_not_used(fake_v2: Path) -> None:
    (fake_v2 / "cgroup.controllers").write_text("cpu io pids\n")
    with pytest.raises(EnvironmentProblem) as info:
        LocalBackend().start(_spec("lab-1"), LABELS)
    assert info.value.message == "no memory cgroup controller found under /sys/fs/cgroup"
    assert info.value.hint and "--backend docker" in info.value.hint
    assert list(_registry().iterdir()) == []


def test_start_without_a_name_makes_one_up(fake_v2: Path) -> None:
    machine = LocalBackend().start(_spec(None), LABELS)
    assert machine.name.startswith("local-")
    assert len(machine.name) == len("local-") + 8
    assert (fake_v2 / f"labcoat.{machine.name}" / "memory.max").is_file()


def test_start_needs_root(fake_v2: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local.os, "geteuid", lambda: 1000)
    with pytest.raises(EnvironmentProblem) as info:
        LocalBackend().start(_spec("lab-1"), LABELS)
    assert "needs root" in info.value.message
    assert not (fake_v2 / "labcoat.lab-1").exists()
    assert list(_registry().iterdir()) == []


# ----------------------------------------------------------------------------- find and remove (fake cgroup)


def test_find_by_labels(fake_v2: Path) -> None:
    backend = LocalBackend()
    backend.start(_spec("a"), LABELS)
    backend.start(_spec("b"), {**LABELS, "labcoat.lab": "2.1"})
    backend.start(_spec("c"), {"labcoat.owner": "someone-else"})

    def names(labels: dict[str, str]) -> list[str]:
        return [m.name for m in backend.find(labels)]

    assert names({"labcoat.owner": "pytest"}) == ["a", "b"]
    assert names({"labcoat.owner": "pytest", "labcoat.lab": "2.1"}) == ["b"]
    assert names({"labcoat.lab": ""}) == ["a", "b"]  # an empty value: the label is there at all
    assert names({"labcoat.owner": "nobody"}) == []
    assert names({}) == ["a", "b", "c"]
    found = backend.find({"labcoat.lab": "2.1"})[0]
    assert found.labels == {**LABELS, "labcoat.lab": "2.1"}
    assert found.status == "running"


def test_find_reports_a_machine_whose_cgroup_is_gone_as_exited(fake_v2: Path) -> None:
    backend = LocalBackend()
    backend.start(_spec("a"), LABELS)
    cg = fake_v2 / "labcoat.a"
    _like_rmdir_on_cgroupfs(cg)
    cg.rmdir()
    [machine] = backend.find(LABELS)
    assert machine.status == "exited"
    assert not machine.is_running


def test_remove_deletes_the_cgroup_and_the_registry_file(fake_v2: Path) -> None:
    backend = LocalBackend()
    machine = backend.start(_spec("a"), LABELS)
    other = backend.start(_spec("b"), LABELS)
    cg = fake_v2 / "labcoat.a"
    _like_rmdir_on_cgroupfs(cg)
    backend.remove(machine)
    assert not cg.exists()
    assert not (_registry() / "a.json").exists()
    assert [m.name for m in backend.find(LABELS)] == ["b"]
    assert (fake_v2 / "labcoat.b").is_dir() and other.is_running


def test_remove_when_the_cgroup_is_already_gone(fake_v2: Path) -> None:
    backend = LocalBackend()
    machine = backend.start(_spec("a"), LABELS)
    cg = fake_v2 / "labcoat.a"
    _like_rmdir_on_cgroupfs(cg)
    cg.rmdir()
    backend.remove(machine)
    backend.remove(machine)  # twice is fine
    assert backend.find(LABELS) == []


def test_remove_that_cannot_rmdir_keeps_the_registry_file_for_a_retry(fake_v2: Path) -> None:
    backend = LocalBackend()
    machine = backend.start(_spec("a"), LABELS)
    (fake_v2 / "labcoat.a" / "child").mkdir()  # a sub-cgroup: rmdir fails with "not empty"
    with pytest.raises(EnvironmentProblem) as info:
        backend.remove(machine)
    assert info.value.message.startswith(f"could not remove cgroup {fake_v2 / 'labcoat.a'}")
    assert (_registry() / "a.json").exists()


# ----------------------------------------------------------------------------- run (fake cgroup)


def test_run_joins_the_cgroup_then_runs_the_command(fake_v2: Path) -> None:
    backend = LocalBackend()
    machine = backend.start(_spec("a"), LABELS)
    procs = fake_v2 / "labcoat.a" / "cgroup.procs"
    result = backend.run(machine, ["sh", "-c", 'echo "pid $$"; echo oops >&2; exit 3'])
    assert result.exit_status == 3
    assert result.failed and not result.succeeded
    assert result.stderr == "oops\n"
    # `exec` keeps the PID: the process that wrote itself into cgroup.procs is the command.
    assert result.stdout == f"pid {procs.read_text().strip()}\n"
    procs.unlink()  # a stale PID in a plain file must not reach remove()'s kill loop


def test_run_passes_env_and_reports_signals(fake_v2: Path) -> None:
    backend = LocalBackend()
    machine = backend.start(_spec("a"), LABELS)
    result = backend.run(machine, ["sh", "-c", 'echo "$GREETING"'], env={"GREETING": "hello"})
    assert (result.exit_status, result.stdout) == (0, "hello\n")
    killed = backend.run(machine, ["sh", "-c", "kill -9 $$"])
    assert killed.exit_status == 137
    (fake_v2 / "labcoat.a" / "cgroup.procs").unlink()


def test_run_times_out(fake_v2: Path) -> None:
    backend = LocalBackend()
    machine = backend.start(_spec("a"), LABELS)
    result = backend.run(machine, ["sleep", "5"], timeout=0.3)
    assert result.timed_out
    assert result.exit_status == 124
    assert 0.3 <= result.duration < 4
    (fake_v2 / "labcoat.a" / "cgroup.procs").unlink()


def test_run_cuts_long_output(fake_v2: Path) -> None:
    backend = LocalBackend()
    machine = backend.start(_spec("a"), LABELS)
    result = backend.run(machine, ["sh", "-c", "head -c 5000 /dev/zero | tr '\\0' x"], max_output=100)
    assert result.stdout == "x" * 100
    assert result.truncated
    (fake_v2 / "labcoat.a" / "cgroup.procs").unlink()


def test_backends_by_name() -> None:
    assert isinstance(get_backend("local"), LocalBackend)
    assert LocalBackend.name == "local"
    with pytest.raises(UsageProblem) as info:
        get_backend("nope")
    assert info.value.message.startswith("unknown backend 'nope'. Valid backends: docker, local")


# ----------------------------------------------------------------------------- the real memory cgroup

V1_MEMORY = Path("/sys/fs/cgroup/memory")
real_cgroup_v1 = pytest.mark.skipif(
    not (hasattr(os, "geteuid") and os.geteuid() == 0 and V1_MEMORY.is_dir()),
    reason="needs root and the cgroup v1 memory controller at /sys/fs/cgroup/memory",
)


@pytest.fixture
def real_machine(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(local, "CGROUP_ROOT", Path("/sys/fs/cgroup"))
    backend = LocalBackend()
    name = f"pytest-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    machine = backend.start(_spec(name, memory=64 * MiB), LABELS)
    try:
        yield backend, machine
    finally:
        if Path(machine.handle["cgroup"]).exists():
            backend.remove(machine)


@real_cgroup_v1
def test_real_command_runs_in_the_labcoat_cgroup_with_its_limit(real_machine: tuple[LocalBackend, Machine]) -> None:
    backend, machine = real_machine
    cg = V1_MEMORY / f"labcoat.{machine.name}"
    assert machine.handle == {"id": machine.name, "name": machine.name, "labels": LABELS, "cgroup": str(cg),
                              "version": 1}
    assert cg.is_dir()

    where = backend.run(machine, ["cat", "/proc/self/cgroup"])
    assert where.succeeded, where
    memory_lines = [line for line in where.stdout.splitlines() if line.split(":")[1] == "memory"]
    assert [line.split(":", 2)[2] for line in memory_lines] == [f"/labcoat.{machine.name}"]

    limit = backend.run(machine, ["sh", "-c", f"cat /sys/fs/cgroup/memory/labcoat.{machine.name}/memory.limit_in_bytes"])
    assert (limit.exit_status, limit.stdout) == (0, "67108864\n")
    memsw = cg / "memory.memsw.limit_in_bytes"
    if memsw.exists():  # swap accounting on: memory+swap is the same limit, so nothing escapes to swap
        assert memsw.read_text() == "67108864\n"

    backend.remove(machine)
    assert not cg.exists()
    assert backend.find(LABELS) == []


@real_cgroup_v1
def test_real_hog_above_the_limit_is_oom_killed(real_machine: tuple[LocalBackend, Machine]) -> None:
    backend, machine = real_machine
    cg = V1_MEMORY / f"labcoat.{machine.name}"
    hog = backend.run(machine, [sys.executable, "-c", "x = b'x' * (200 << 20)"], timeout=60)
    assert hog.exit_status == 137, hog  # SIGKILL from the memcg OOM killer, not a MemoryError
    oom_control = dict(line.split() for line in (cg / "memory.oom_control").read_text().splitlines())
    if "oom_kill" in oom_control:  # the counter exists since Linux 4.13
        assert int(oom_control["oom_kill"]) >= 1


# ----------------------------------------------------------------------------- cgroup namespace (v2)


def test_command_joins_as_root_and_drops_to_the_user_last(fake_v2: Path) -> None:
    backend = LocalBackend()
    machine = backend.start(_spec("a"), LABELS)
    argv = backend.command(machine, ["id", "-u"], user="nobody")
    assert argv[:2] == ["/bin/sh", "-c"] and argv[3:] == ["labcoat", "runuser", "-u", "nobody", "--", "id", "-u"]
    assert backend.command_env(machine)["LABCOAT_CGROUP_PROCS"] == str(fake_v2 / "labcoat.a" / "cgroup.procs")


def test_a_fake_cgroup_root_gets_no_namespace(fake_v2: Path) -> None:
    # The namespace shows the real cgroup2 mount: under a fake root there is nothing to show.
    machine = LocalBackend().start(_spec("a"), LABELS)
    assert "cgroupns" not in machine.handle
    assert local._namespace_works(fake_v2 / "labcoat.a", 1) == (False, f"the cgroup root {fake_v2} is not /sys/fs/cgroup")
    assert LocalBackend._wrapper(machine) == local._ENTER


def test_a_machine_recorded_with_a_namespace_enters_it(fake_v2: Path) -> None:
    machine = LocalBackend().start(_spec("a"), LABELS)
    machine.handle["cgroupns"] = True
    wrapper = LocalBackend._wrapper(machine)
    assert wrapper.startswith('echo $$ > "$LABCOAT_CGROUP_PROCS" && exec unshare --cgroup --mount')
    assert "mount -t cgroup2 labcoat-cgroupns /sys/fs/cgroup" in wrapper


REAL_V2 = Path("/sys/fs/cgroup")


def _root_on_v2_with_memory() -> bool:
    controllers = REAL_V2 / "cgroup.controllers"
    return os.geteuid() == 0 and controllers.exists() and "memory" in controllers.read_text().split()


real_cgroup_v2 = pytest.mark.skipif(
    not _root_on_v2_with_memory(),
    reason="needs root on a cgroup v2 host with the memory controller (runs in scripts/vm.sh's v2-local lane)",
)


@real_cgroup_v2
def test_real_v2_namespace_shows_the_machines_own_limit(real_machine: tuple[LocalBackend, Machine]) -> None:
    backend, machine = real_machine
    assert machine.handle.get("cgroupns") is True, machine.handle
    seen = backend.run(machine, ["sh", "-c", "cat /sys/fs/cgroup/memory.max /proc/self/cgroup"])
    assert (seen.exit_status, seen.stdout) == (0, f"{64 * MiB}\n0::/\n"), seen
    assert (REAL_V2 / f"labcoat.{machine.name}" / "memory.swap.max").read_text() in ("0\n", "max\n")


@real_cgroup_v2
def test_real_v2_hog_is_oom_killed_and_counted_in_memory_events(real_machine: tuple[LocalBackend, Machine]) -> None:
    backend, machine = real_machine
    hog = backend.run(machine, [sys.executable, "-c", "x = b'x' * (200 << 20)"], timeout=120)
    assert hog.exit_status == 137, hog
    events = backend.run(machine, ["cat", "/sys/fs/cgroup/memory.events"])
    assert int(dict(line.split() for line in events.stdout.splitlines())["oom_kill"]) >= 1, events
