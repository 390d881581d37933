"""Killercoda for real: the exported scenario in a stand-in VM, imported scenarios in labcoat sandboxes.

The stand-in for Killercoda's `ubuntu` VM is a container of images/killercoda-vm (Debian
with Python 3, no labcoat, no `answer`, no `hog`), started with a 2 GiB memory limit (the
VM's size) and no network, so everything must come from the export's assets. Inside it the
cgroup filesystem is read-only: the local backend falls back to the container's own cgroup.

The first export downloads the dependency wheels from PyPI (about 15 MiB, once: they are
cached in ~/.cache/labcoat/killercoda-wheels) and the first run builds the VM image with
debootstrap (about two minutes, once).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labcoat.backends.base import MachineSpec
from labcoat.content.catalog import Catalog
from labcoat.killercoda.format import asset_install_script, load_index, validate_scenario

# Once flaky (CI, 2026-12-01 and -02): `lab start` timed out waiting for one part's services to hold
# their memory. Cause: every part runs on this one host, and parts 1, 3 and 6 drew process names from
# overlapping lists, so one part's `pkill -x` (preparing it) killed another part's service of the same
# name. The names are disjoint now, and `lab validate` refuses overlapping ones (Catalog._check_process_names).
pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
VM_DIR = ROOT / "images" / "killercoda-vm"
FIXTURES = ROOT / "tests" / "fixtures" / "killercoda"
VM_MEMORY = 2 << 30
WHERE = "/tmp/scenario"


class VM:
    """The stand-in VM: run a shell command in it as root, like Killercoda runs scripts."""

    def __init__(self, backend: Any, machine: Any) -> None:
        self.backend, self.machine = backend, machine

    def sh(self, script: str, timeout: float = 120) -> Any:
        return self.backend.run(self.machine, ["/bin/bash", "-c", script], timeout=timeout)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from labcoat.killercoda.export import export_lab

    out = tmp_path_factory.mktemp("killercoda") / "lab-5.3"
    result = export_lab(Catalog.load(ROOT), "5.3", out)
    assert validate_scenario(out) == []
    # three Pythons' wheels (~15 MiB) and the learner's Docker image for part 5 (~28 MiB gzip'd)
    assert 5 * (1 << 20) < result.total < 64 * (1 << 20), result.sizes
    assert [a.image_id for a in result.images] == ["sandbox"]
    return out


@pytest.fixture(scope="module")
def vm(exported: Path) -> Iterator[VM]:
    from labcoat.backends import images
    from labcoat.backends.docker import DockerBackend
    from labcoat.content.loader import load_model
    from labcoat.content.models import Image
    from labcoat.runner.session import labels_for

    backend = DockerBackend()
    tag = images.ensure_image(backend.client, load_model(Image, VM_DIR / "image.yaml"), VM_DIR)
    spec = MachineSpec(image=tag, memory=VM_MEMORY, pids_limit=4096, hostname="ubuntu")
    machine = backend.start(spec, labels_for("killercoda-vm"))
    try:
        backend.put(machine, exported, "/tmp")
        vm = VM(backend, machine)
        moved = vm.sh(f"mv /tmp/{exported.name} {WHERE}")
        assert moved.succeeded, moved
        # What Killercoda does first: copy the assets where index.json says.
        assets = vm.sh(asset_install_script(exported, load_index(exported), WHERE))
        assert assets.succeeded, assets
        setup = vm.sh(f"bash {WHERE}/setup.sh", timeout=600)
        log = vm.sh("cat /var/log/labcoat-setup.log").stdout
        assert setup.succeeded, log
        assert vm.sh("test -f /var/lib/labcoat/setup.done").succeeded, log
        yield vm
    finally:
        backend.remove(machine)


def test_the_vm_has_no_network_and_nothing_of_labcoat_but_the_assets(vm: VM) -> None:
    assert vm.sh("python3 -c 'import socket; socket.create_connection((\"pypi.org\", 443), timeout=3)'").failed
    where = vm.sh("command -v lab answer hog").stdout.split()
    assert where == ["/usr/local/bin/lab", "/usr/local/bin/answer", "/usr/local/bin/hog"]


def test_the_setup_started_the_lab_in_the_containers_own_cgroup(vm: VM) -> None:
    machines = vm.sh("cat /var/lib/labcoat/local-machines/*.json")
    records = [json.loads(line) for line in machines.stdout.replace("}{", "}\n{").splitlines() if line.strip()]
    assert len(records) == 4  # the main sandbox and parts 3, 4 and 6
    for record in records:
        assert record["shared"] is True, record
        assert record["limit"] == VM_MEMORY
        assert record["labels"]["labcoat.lab"] == "5.3"
    wait = vm.sh(f"bash {WHERE}/wait.sh")
    assert wait.succeeded and "Ready." in wait.stdout, wait


@pytest.mark.parametrize("n", [1, 2])
def test_verify_fails_before_and_passes_after_the_solution(vm: VM, n: int) -> None:
    before = vm.sh(f"bash {WHERE}/step{n}/verify.sh")
    assert before.exit_status == 1, before
    solution = vm.sh(f"bash {WHERE}/step{n}/solution.sh")
    assert solution.succeeded, solution
    after = vm.sh(f"bash {WHERE}/step{n}/verify.sh")
    assert after.exit_status == 0, after
    assert f"part{n}" in after.stdout and "passed" in after.stdout


def test_part3_verify_fails_before_the_solution(vm: VM) -> None:
    result = vm.sh(f"bash {WHERE}/step3/verify.sh")
    assert result.exit_status == 1, result


@pytest.mark.xfail(reason="part 3 needs a 256m cgroup of its own; in the stand-in every part shares the "
                   "container's 2 GiB cgroup, so the provoked trigger never reaches an OOM kill", strict=False)
def test_part3_verify_after_the_solution_and_the_oom(vm: VM) -> None:
    vm.sh(f"bash {WHERE}/step3/solution.sh", timeout=240)  # the solution ends with `lab provoke part3`
    result = vm.sh(f"bash {WHERE}/step3/verify.sh")
    assert result.exit_status == 0, result


def test_part4_verify_with_its_pressure_run(vm: VM) -> None:
    """Part 4 needs PSI; the runner samples it host-wide, so it works in the shared cgroup too."""
    if vm.sh("cat /proc/pressure/memory").failed:
        pytest.skip("this kernel has no PSI: part 4 is skipped, and its verify passes whatever")
    before = vm.sh(f"bash {WHERE}/step4/verify.sh")
    assert before.exit_status == 1, before
    # the exported solution runs `lab provoke part4` while it works (provoke_when: during)
    run = vm.sh(f"bash {WHERE}/step4/solution.sh", timeout=180)
    assert run.succeeded, run
    # The run's own expectations (pressure inside the 128m sandbox) may not hold in the shared 2 GiB
    # cgroup; what the check compares is the learner's line with the runner's samples of the host's PSI.
    after = vm.sh(f"bash {WHERE}/step4/verify.sh")
    assert after.exit_status == 0, (after, vm.sh("tail -n 30 /tmp/labcoat-provoke-part4.log").stdout)


def test_part5_cannot_be_checked_without_docker_on_the_vm(vm: VM) -> None:
    """Part 5 inspects a container through Docker: the stand-in has none, so the check cannot run (exit 4).
    The setup said why it could not load the shipped image, and went on (parts 1-4 and 6 need no Docker);
    the terminal's first message repeats it."""
    result = vm.sh(f"bash {WHERE}/step5/verify.sh")
    assert result.exit_status == 4, result
    assert "not your fault" in result.stdout
    assert vm.sh("cat /var/lib/labcoat/images.failed").stdout.strip() == "image sandbox: this VM has no docker command"
    assert "a part that uses Docker cannot be done here" in vm.sh(f"bash {WHERE}/wait.sh").stdout


def test_verify_before_the_setup_finished_fails_with_a_reason(vm: VM) -> None:
    vm.sh("mv /var/lib/labcoat/setup.done /var/lib/labcoat/setup.done.away")
    try:
        result = vm.sh(f"bash {WHERE}/step1/verify.sh")
    finally:
        vm.sh("mv /var/lib/labcoat/setup.done.away /var/lib/labcoat/setup.done")
    assert result.exit_status == 1
    assert "not ready yet" in result.stdout


def test_lab_stop_in_the_vm_kills_what_the_lab_started_and_nothing_else(vm: VM) -> None:
    """Runs last in this module: the shared cgroup's processes are the lab's; `lab stop` removes only those."""
    assert vm.sh("pgrep -x log-agent").succeeded  # part 3's one service with a fixed name
    stop = vm.sh(". /etc/profile.d/labcoat.sh; lab stop")
    assert stop.succeeded, stop
    assert vm.sh("pgrep -x log-agent").failed
    assert vm.sh("pgrep -x sleep").succeeded  # the container's own init child lives on
    assert vm.sh("ls /var/lib/labcoat/local-machines/").stdout.strip() == ""


def test_the_simulator_plays_the_export(exported: Path, cli: Any) -> None:
    """`lab killercoda run OUT --solutions --all-steps`: what docs/killercoda.md's table shows for the stand-in
    (cgroup v1 host, one shared cgroup, no Docker in the VM). Part 3 is the xfail above; the v2-local VM
    lane runs the same command without --all-steps, where every step must pass."""
    result = cli("killercoda", "run", str(exported), "--solutions", "--all-steps", "--json")
    assert result.exit_code in (0, 1), result
    data = json.loads(result.stdout)
    assert [(r["script"], r["exit"]) for r in data["setup"]] == [("setup.sh", 0), ("wait.sh", 0)]
    steps = {s["n"]: s for s in data["steps"]}
    for n in (1, 2, 4):
        assert (steps[n]["status"], steps[n]["before"], steps[n]["after"]) == ("passed", 1, 0), steps[n]
    assert (steps[5]["status"], steps[5]["after"]) == ("stuck", 4), steps[5]  # no Docker in the stand-in
    assert "not your fault" in steps[5]["detail"]


# ----------------------------------------------------------------------------- import, then selftest for real


def _selftest(cli: Any, out: Path, lab_id: str) -> tuple[int, list[dict[str, Any]]]:
    result = cli("--content", str(out), "selftest", lab_id, "--json")
    assert result.exit_code in (0, 1), result
    return result.exit_code, json.loads(result.stdout)["rows"]


def test_imported_scenario_passes_selftest(cli: Any, tmp_path: Path) -> None:
    from labcoat.killercoda.importer import selftest_summary

    out = tmp_path / "content"
    imported = cli("import", "killercoda", str(FIXTURES / "linux-files-katacoda"), str(out))
    assert imported.exit_code == 0, imported
    code, rows = _selftest(cli, out, "kc-linux-files-katacoda")
    assert code == 0, rows
    assert [(r["part"], r["stage"], r["got"]) for r in rows] == [
        (f"step{n}", stage, got) for n in (1, 2, 3) for stage, got in (
            ("fresh sandbox", "fail"), ("decoy untouched-sandbox", "fail"), ("solution", "pass"),
            ("solution again", "pass"))]
    assert selftest_summary(rows) == [f"✓ step{n}: verify fails before the solution, passes after it"
                                      for n in (1, 2, 3)]


def test_selftest_flags_a_verify_script_that_passes_untouched(cli: Any, tmp_path: Path) -> None:
    scenario = tmp_path / "scenario"
    shutil.copytree(FIXTURES / "app-config", scenario)
    # a common bug: the verify script checks that the file exists, not what the step asked
    (scenario / "step3" / "verify.sh").write_text("#!/bin/bash\ntest -f /root/app/app.conf\n")
    out = tmp_path / "content"
    result = cli("import", "killercoda", str(scenario), str(out), "--id", "kc-app-config", "--selftest", "--json")
    assert result.exit_code == 1, result
    data = json.loads(result.stdout)
    assert data["valid"] and data["selftest_ok"] is False
    assert data["selftest"][0] == "✓ step1: verify fails before the solution, passes after it"
    assert data["selftest"][1] == "- step2: follow-along (no verify script): nothing to verify, skipped"
    assert data["selftest"][2].startswith("✗ step3: verify PASSES ON AN UNTOUCHED SANDBOX, passes after it")


def test_imported_check_shows_the_verify_output_to_the_learner(cli: Any, tmp_path: Path) -> None:
    out = tmp_path / "content"
    assert cli("import", "killercoda", str(FIXTURES / "runaway-process"), str(out)).exit_code == 0
    started = cli("--content", str(out), "start", "kc-runaway-process", "--quiet")
    try:
        assert started.exit_code == 0, started
        checked = cli("--content", str(out), "check", "step1", "--json")
        assert checked.exit_code == 1, checked
        [check] = json.loads(checked.stdout)["parts"][0]["checks"]
        assert check["status"] == "failed"
        assert check["found"].startswith("exit 1; it printed:\nrunaway is still running (pid ")
        # the verify script is nowhere in the sandbox, before or after a check
        from labcoat.backends.docker import DockerBackend
        from labcoat.runner.session import current_session

        sandbox = current_session(DockerBackend()).main
        found = DockerBackend().run(sandbox.machine, ["sh", "-c", "grep -rl 'runaway is gone' / "
                                                      "--exclude-dir=proc --exclude-dir=sys --exclude-dir=dev 2>/dev/null; true"])
        assert found.stdout.strip() == ""
    finally:
        cli("--content", str(out), "stop")
