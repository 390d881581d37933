"""The sandbox lifecycle on a real engine: limits, labels, cleanup after interruptions.

The engine is $LABCOAT_BACKEND's (default docker): `LABCOAT_BACKEND=podman pytest
tests/integration/test_lifecycle.py` runs the same tests on Podman.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from labcoat.backends import DEFAULT_BACKEND, get_backend
from labcoat.backends.base import Backend
from labcoat.runner.session import L_OWNER, owner

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parents[2]


def _engine() -> Backend:
    return get_backend(os.environ.get("LABCOAT_BACKEND") or DEFAULT_BACKEND)


def _mine(backend: Backend) -> list:
    return backend.find({L_OWNER: owner()})


@pytest.fixture
def backend():
    b = _engine()
    yield b
    for machine in _mine(b):
        b.remove(machine)


def test_start_sets_the_lab_limits_and_stop_removes_everything(cli, backend, monkeypatch):
    monkeypatch.delenv("LABCOAT_DISKWATCH", raising=False)  # this test wants the watcher `lab start` starts
    result = cli("start", "5.3", "--quiet")
    assert result.exit_code == 0, result
    machines = _mine(backend)
    assert len(machines) == 4  # the main sandbox and the own sandboxes of part3, part4 and part6
    by_part = {m.label("labcoat.part"): m for m in machines}
    expected = {"": 512 << 20, "part3": 256 << 20, "part4": 128 << 20, "part6": 384 << 20}
    for part, machine in by_part.items():
        host = backend.inspect(machine)["HostConfig"]
        assert host["Memory"] == expected[part]
        assert host["MemorySwap"] == expected[part]  # memory+swap equal: same behaviour with or without swap
        assert host["NetworkMode"] == "none"
        assert host["PidsLimit"] == 256
        assert "no-new-privileges" in host["SecurityOpt"]
        # The disk bound and the tmpfs folders, as the lab declares them; no CPU limit declared: none set.
        # Docker names it "fsize", Podman "RLIMIT_FSIZE"
        fsize = {u["Name"].lower().removeprefix("rlimit_"): (u["Soft"], u["Hard"]) for u in host["Ulimits"]}
        assert fsize.get("fsize") == (256 << 20, 256 << 20)
        assert "size=67108864" in host["Tmpfs"]["/tmp"] and set(host["Tmpfs"]) == {"/tmp", "/var/tmp"}
        assert not host.get("NanoCpus")
        # The kernel agrees: the sandbox's own cgroup file says the same limit.
        out = backend.run(machine, ["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
                                    "2>/dev/null || cat /sys/fs/cgroup/memory.max"]).stdout.strip()
        assert int(out) == expected[part]
        assert machine.label("labcoat.lab") == "5.3" and machine.label("labcoat.seed").isdigit()
    status = cli("status", "--json")
    data = json.loads(status.stdout)
    assert data["memory_limit"] == 512 << 20 and data["memory_swap_limit"] == 512 << 20
    assert data["cgroup_version"] in (1, 2)
    # The whole disk of each sandbox is measured (the disk watcher `lab start` started) against its limit.
    for _ in range(50 if not backend.supports.get("StorageOptSize") else 0):  # else the engine's quota does
        layers = json.loads(cli("status", "--json").stdout)["disk"]["layers"]
        if all(layer["used"] is not None for layer in layers.values()):
            break
        time.sleep(0.2)
    else:
        assert backend.supports.get("StorageOptSize"), f"the disk watcher measured no layer in 10 s: {layers}"
        layers = {}
    if layers:
        assert set(layers) == {"main", "part3", "part4", "part6"}
        assert all(layer["limit"] == 256 << 20 and layer["full"] is False for layer in layers.values()), layers
    again = cli("start", "5.3", "--quiet")  # a ready lab is reused, not duplicated
    assert again.exit_code == 0 and "already running" in again.stderr
    assert len(_mine(backend)) == 4
    stopped = cli("stop")
    assert stopped.exit_code == 0, stopped
    assert _mine(backend) == []


def test_randomisation_differs_between_sandboxes(cli, backend):
    """Each sandbox's services follow its own seed; two sandboxes expect different answers."""
    from labcoat.content.catalog import Catalog
    from labcoat.runner.steps import draw_vars

    scenario = Catalog.load(ROOT).scenario("lab53-part1")
    answers = []
    for _ in range(3):
        assert cli("start", "5.3", "--quiet", "--fresh").exit_code == 0
        main = next(m for m in _mine(backend) if not m.label("labcoat.part"))
        drawn = draw_vars(scenario, int(main.label("labcoat.seed")))
        ps = backend.run(main, ["ps", "-eo", "comm=,rss=", "--sort=-rss"]).stdout.split()
        largest, rss_kib = ps[0], int(ps[1])
        # The live truth is what the seed drew: the learner's expected answer changes with it.
        assert largest == drawn["big_name"]
        assert abs(rss_kib / 1024 - int(drawn["big_mib"])) < 4
        answers.append((largest, drawn["big_mib"]))
        if len(set(answers)) > 1:
            break
    assert len(set(answers)) > 1, f"three sandboxes drew the same largest process: {answers}"
    cli("stop")


def _start_and_kill(sig: int, after: float, env: dict[str, str]) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "labcoat", "start", "5.3", "--quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(after)
    proc.send_signal(sig)
    proc.wait(timeout=60)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
@pytest.mark.parametrize("after", [0.8, 1.6])
def test_interrupted_start_leaves_nothing_the_next_command_does_not_clean(cli, backend, sig, after):
    env = {**os.environ}
    _start_and_kill(sig, after, env)
    if sig == signal.SIGINT:
        # SIGINT: the start removes what it started before it exits (or had finished).
        leftovers = [m for m in _mine(backend) if not _is_ready(m)]
        assert leftovers == []
    # Either way, the next `lab stop` finds everything by its labels.
    assert cli("stop").exit_code == 0
    assert _mine(backend) == []


def _is_ready(machine) -> bool:
    from labcoat.runner.session import Sandbox

    return Sandbox(_engine(), machine, "5.3").is_ready


def test_killed_start_is_replaced_by_the_next_start(cli, backend):
    _start_and_kill(signal.SIGKILL, 1.0, {**os.environ})
    assert cli("start", "5.3", "--quiet").exit_code == 0
    machines = _mine(backend)
    assert len(machines) == 4 and all(_is_ready(m) for m in machines)
    sessions = {m.label("labcoat.session") for m in machines}
    assert len(sessions) == 1
    cli("stop")


def test_doctor_json_reports_cgroup_and_oom_adj(cli):
    result = cli("doctor", "--json")
    assert result.exit_code == 0, result
    data = json.loads(result.stdout)
    assert data["cgroup_version"] in (1, 2)
    assert isinstance(data["negative_oom_score_adj"], bool)
    # On this project's machines CAP_SYS_RESOURCE is missing from the bounding set.
    bounding = int(next(line.split()[1] for line in Path("/proc/self/status").read_text().splitlines()
                        if line.startswith("CapBnd:")), 16)
    assert data["negative_oom_score_adj"] == bool(bounding >> 24 & 1)


def test_check_without_a_lab_says_what_to_run(cli):
    result = cli("check")
    assert result.exit_code == 4
    assert "lab start" in result.stderr and "Traceback" not in result.stderr


def test_progress_survives_stop_and_start(cli, backend):
    """A part once passed stays passed, with its time, across `lab stop` / `lab start`."""
    from labcoat.runner.session import current_session

    assert cli("start", "5.3", "--quiet").exit_code == 0
    main = current_session(backend).main
    solution = (ROOT / "labs" / "5.3" / "solutions" / "part1.sh").read_text()
    assert backend.run(main.machine, ["bash", "-c", solution]).succeeded
    checked = cli("check", "part1")
    assert checked.exit_code == 0, checked
    assert cli("stop").exit_code == 0
    assert cli("start", "5.3", "--quiet").exit_code == 0
    status = json.loads(cli("status", "--json").stdout)
    parts = {p["id"]: p for p in status["parts"]}
    assert parts["part1"]["passed"] and parts["part1"]["first_passed"]
    assert not parts["part2"]["passed"]
    # The new sandbox has none of the old answers: checking again fails, the progress stays.
    assert cli("check", "part1").exit_code == 1
    assert json.loads(cli("status", "--json").stdout)["parts"][0]["passed"]
    cli("stop")


def test_reset_part_and_the_learners_provoke_flow(cli, backend):
    """`lab reset part3` gives part 3 a new sandbox; then the learner's own flow passes it."""
    from labcoat.runner.session import current_session

    assert cli("start", "5.3", "--quiet").exit_code == 0
    before = current_session(backend)
    old = before.for_part("part3").machine.id
    reset = cli("reset", "part3")
    assert reset.exit_code == 0, reset
    after = current_session(backend)
    sandbox = after.for_part("part3")
    assert sandbox.machine.id != old and sandbox.session_id == before.main.session_id
    assert old not in {m.id for m in _mine(backend)}
    ps = backend.run(sandbox.machine, ["ps", "-eo", "comm="]).stdout.split()
    # log-agent and three services whose names are drawn from the seed (scenarios/lab53-part3.yaml).
    drawn = set(yaml.safe_load((ROOT / "scenarios" / "lab53-part3.yaml").read_text())["vars"]["big_name"]["choice"])
    assert "log-agent" in ps and len(drawn & set(ps)) == 3
    # The learner: record a prediction in the part's sandbox, provoke from the host, check.
    solution = (ROOT / "labs" / "5.3" / "solutions" / "part3.sh").read_text()
    assert backend.run(sandbox.machine, ["bash", "-c", solution]).succeeded
    provoked = cli("provoke", "part3", "--json")
    assert provoked.exit_code == 0, provoked
    record = json.loads(provoked.stdout)
    kills = [e for e in record["events"] if e["kind"] == "oom_kill"]
    assert len(kills) == 1
    checked = cli("check", "part3")
    assert checked.exit_code == 0, checked
    cli("stop")
