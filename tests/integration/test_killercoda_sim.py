"""`lab killercoda run`: the simulator plays scenarios in the stand-in VM; imported scenarios for real.

The scenarios are the project's own (tests/fixtures/killercoda/) or written here. The first
run builds the stand-in VM image (images/killercoda-vm, debootstrap, about two minutes once).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "killercoda"


def _leftover_vms() -> list[Any]:
    from labcoat.backends.docker import DockerBackend
    from labcoat.runner.session import labels_for

    labels = labels_for("killercoda-vm")
    return DockerBackend().find({k: labels[k] for k in ("labcoat.owner", "labcoat.kind")})


def _scenario(root: Path, index: dict[str, Any], files: dict[str, str]) -> Path:
    root.mkdir(parents=True)
    (root / "index.json").write_text(json.dumps(index))
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_six_steps_with_solutions_pass_and_the_vm_is_gone(cli: Any) -> None:
    result = cli("killercoda", "run", str(FIXTURES / "log-cleanup"), "--solutions", "--json")
    assert result.exit_code == 0, result
    data = json.loads(result.stdout)
    assert data["ok"] is True
    assert [(s["n"], s["status"]) for s in data["steps"]] == [
        (1, "follow-along"), (2, "passed"), (3, "passed"), (4, "follow-along"), (5, "passed"), (6, "passed")]
    for step in data["steps"]:
        if step["status"] == "passed":  # verify failed before the solution and passed after it
            assert step["before"] != 0 and step["after"] == 0, step
    [background, foreground] = data["setup"]
    assert (background["script"], background["where"], background["exit"]) == ("setup.sh", "background", 0)
    assert foreground["where"] == "terminal" and foreground["output"].endswith("Ready.")
    assert any("kubernetes-kubeadm-1node" in n for n in data["notes"])
    assert _leftover_vms() == []


def test_gating_a_learner_cannot_pass_a_failing_verify(cli: Any) -> None:
    result = cli("killercoda", "run", str(FIXTURES / "log-cleanup"), "--json")
    assert result.exit_code == 1, result
    steps = json.loads(result.stdout)["steps"]
    assert [s["status"] for s in steps] == ["follow-along", "stuck"] + ["not reached"] * 4
    assert "verify exits 1" in steps[1]["detail"]
    table = cli("killercoda", "run", str(FIXTURES / "log-cleanup"))
    assert table.exit_code == 1
    assert "not reached" in table.stdout and "the learner cannot finish" in table.stdout


def test_terminal_context_untouched_verify_and_all_steps(cli: Any, tmp_path: Path) -> None:
    root = _scenario(tmp_path / "sc", {"title": "Terminal", "details": {
        "intro": {"text": "intro.md", "foreground": "fg.sh"},
        "steps": [
            {"title": "Use the variable", "text": "s1.md", "verify": "v1.sh",
             "solution": "echo \"$GREETING\" > /root/out.txt\npwd > /root/where.txt\n"},
            {"title": "Checks nothing", "text": "s2.md", "verify": "v2.sh", "solution": "echo done; true\n"},
            {"title": "Never passes", "text": "s3.md", "verify": "v3.sh", "solution": "echo tried; true\n"},
            {"title": "After it", "text": "s4.md", "verify": "v4.sh", "solution": "touch /root/four\n"},
        ]}, "backend": {"imageid": "ubuntu"}},
        {"intro.md": "# Terminal\n", "fg.sh": "export GREETING=hello\ncd /tmp\n", "s1.md": "a", "s2.md": "b",
         "s3.md": "c", "s4.md": "d",
         "v1.sh": "grep -qx hello /root/out.txt && grep -qx /tmp /root/where.txt\n", "v2.sh": "true\n",
         "v3.sh": "echo 'never'; exit 3\n", "v4.sh": "test -f /root/four\n"})
    result = cli("killercoda", "run", str(root), "--solutions", "--all-steps", "--json")
    assert result.exit_code == 1, result
    data = json.loads(result.stdout)
    assert data["gating"] is False
    assert [s["status"] for s in data["steps"]] == ["passed", "passes untouched", "stuck", "passed"]
    assert data["steps"][2]["after"] == 3 and "never" in data["steps"][2]["detail"]


def test_a_failing_setup_is_reported_with_its_exit_and_output(cli: Any, tmp_path: Path) -> None:
    root = _scenario(tmp_path / "sc", {"title": "Needs the network", "details": {
        "intro": {"text": "intro.md", "background": "setup.sh"},
        "steps": [{"title": "s", "text": "s.md", "verify": "v.sh", "solution": "touch /root/x\n"}]},
        "backend": {"imageid": "ubuntu"}},
        {"intro.md": "hi", "s.md": "do it", "v.sh": "test -f /root/x\n",
         "setup.sh": "echo installing\npython3 -c 'import socket; socket.create_connection((\"pypi.org\", 443), 3)' "
                     "|| { echo 'offline: cannot download' >&2; exit 42; }\n"})
    result = cli("killercoda", "run", str(root), "--solutions", "--json")
    assert result.exit_code == 1, result
    data = json.loads(result.stdout)
    [setup] = data["setup"]
    assert (setup["script"], setup["exit"], setup["ok"]) == ("setup.sh", 42, False)
    assert "offline: cannot download" in setup["output"]
    assert data["steps"][0]["status"] == "passed"  # the step itself does not need what failed


def test_a_bad_scenario_is_a_usage_error(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "index.json").write_text("{broken")
    result = cli("killercoda", "run", str(tmp_path))
    assert result.exit_code == 2
    assert "not valid JSON" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


# ----------------------------------------------------------------------------- imported for real


def test_imported_follow_along_steps_in_check_and_selftest(cli: Any, tmp_path: Path) -> None:
    out = tmp_path / "content"
    imported = cli("import", "killercoda", str(FIXTURES / "log-cleanup"), str(out), "--selftest", "--json")
    assert imported.exit_code == 0, imported
    data = json.loads(imported.stdout)
    assert data["selftest_ok"] is True
    assert data["selftest"] == [
        "- step1: follow-along (no verify script): nothing to verify, skipped",
        "✓ step2: verify fails before the solution, passes after it",
        "✓ step3: verify fails before the solution, passes after it",
        "- step4: follow-along (no verify script): nothing to verify, skipped",
        "✓ step5: verify fails before the solution, passes after it",
        "✓ step6: verify fails before the solution, passes after it"]
    started = cli("--content", str(out), "start", "kc-log-cleanup", "--quiet")
    try:
        assert started.exit_code == 0, started
        checked = cli("--content", str(out), "check", "step1")
        assert checked.exit_code == 0, checked
        assert "nothing to verify" in checked.stdout
        # the intro's background left its writer running; the foreground's export reached the learner's shell
        from labcoat.backends.docker import DockerBackend
        from labcoat.runner.session import current_session

        machine = current_session(DockerBackend()).main.machine
        assert DockerBackend().run(machine, ["pgrep", "-x", "logwriter"]).succeeded
        shell = DockerBackend().run(machine, ["bash", "-ic", "echo $DEMO_HOME; pwd"])
        assert shell.stdout.split()[-2:] == ["/etc/demo", "/var/log/demo"], shell
    finally:
        cli("--content", str(out), "stop")


def test_imported_failing_background_names_the_script(cli: Any, tmp_path: Path) -> None:
    root = _scenario(tmp_path / "sc", {"title": "Offline", "details": {
        "intro": {"text": "intro.md", "background": "setup.sh"},
        "steps": [{"title": "s", "text": "s.md", "verify": "v.sh"}]}, "backend": {"imageid": "ubuntu"}},
        {"intro.md": "hi", "s.md": "x", "v.sh": "true\n",
         "setup.sh": "echo 'Reading package lists...'\necho 'E: Unable to locate package sysstat' >&2\nexit 100\n"})
    out = tmp_path / "content"
    assert cli("import", "killercoda", str(root), str(out), "--id", "kc-offline").exit_code == 0
    started = cli("--content", str(out), "start", "kc-offline", "--quiet")
    try:
        assert started.exit_code != 0, started
        said = started.stdout + started.stderr
        assert "intro background setup.sh exited 100" in said, said
        assert "E: Unable to locate package sysstat" in said
        assert "--network" in said
        assert "Traceback" not in said
    finally:
        cli("--content", str(out), "stop")


def test_a_round_tripped_lab_starts_and_passes_its_own_selftest(cli: Any, tmp_path: Path) -> None:
    """`lab export killercoda` then `lab import killercoda` gives back a lab that runs, not only one that
    loads: its part 1 selftest passes on real sandboxes (fresh fails, every decoy fails, the solution
    passes twice), and `lab start` / `lab check` / `lab stop` work from the restored folder."""
    import zipfile

    from labcoat.content.catalog import Catalog
    from labcoat.killercoda import export as kexport

    def wheels(dest: Path) -> list[Path]:  # the wheels only matter on a Killercoda VM, not here
        dest.mkdir(parents=True, exist_ok=True)
        whl = dest / "labcoat-0.1.0-py3-none-any.whl"
        with zipfile.ZipFile(whl, "w") as zf:
            zf.writestr("README", "stand-in")
        return [whl]

    scenario = tmp_path / "lab-5.3"
    kexport.export_lab(Catalog.load(ROOT), "5.3", scenario, wheels=wheels, ship_images=False)
    restored = tmp_path / "restored"
    imported = cli("import", "killercoda", str(scenario), str(restored))
    assert imported.exit_code == 0, imported
    selftest = cli("--content", str(restored), "selftest", "5.3", "--part", "part1", "--no-mutations")
    assert selftest.exit_code == 0, selftest
    started = cli("--content", str(restored), "start", "5.3", "--quiet")
    try:
        assert started.exit_code == 0, started
        checked = cli("--content", str(restored), "check", "part1")
        assert checked.exit_code == 1, checked  # nothing done yet: a real check, not an empty one
        assert "part1" in checked.stdout
    finally:
        assert cli("--content", str(restored), "stop").exit_code == 0
