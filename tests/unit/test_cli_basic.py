"""The `lab` command's basics: help, exit codes, validate, list, and errors without tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from labcoat.cli import COMMANDS
from labcoat.errors import CONTENT_INVALID, OK, USAGE

BROKEN_LAB = 'schema_version: 1\nid: "9.1"\ntitle: Broken: yes\n'  # ':' inside a value: 3:14


@pytest.fixture
def cli(cli, monkeypatch: pytest.MonkeyPatch):
    """The shared `cli` fixture, with `App.print_json` flushing stdout.

    tests/conftest.py reads the captured stdout without flushing it first (CliRunner.invoke
    flushes, runner.isolation does not), so JSON written with sys.stdout.write would be lost.
    """
    from labcoat.app import App

    original = App.print_json

    def print_json(self: App, data: object) -> None:
        original(self, data)
        sys.stdout.flush()

    monkeypatch.setattr(App, "print_json", print_json)
    return cli


def _flat(text: str) -> str:
    """Text with rich's line wrapping undone."""
    return " ".join(text.split())


# ----------------------------------------------------------------------------- help


def test_help_lists_every_command_and_the_exit_codes(cli) -> None:
    result = cli("--help")
    assert result.exit_code == OK, result
    out = result.stdout
    commands = out.split("Commands:", 1)[1]
    for name, (_, _, short) in COMMANDS.items():
        assert f"  {name} " in commands, name
        assert short in _flat(commands), short
    assert "Exit codes: 0 ok, 1 checks failed, 2 usage error, 3 content invalid," in out
    assert "5 ungradable" in out
    assert result.stderr == ""


def test_short_help_option(cli) -> None:
    result = cli("-h")
    assert result.exit_code == OK
    assert "Commands:" in result.stdout


def test_version(cli) -> None:
    from labcoat import __version__

    result = cli("--version")
    assert result.exit_code == OK
    assert result.stdout.strip() == f"labcoat, version {__version__}"


_HELP_PROBE = """
import json, sys, time
began = time.perf_counter()
from labcoat.cli import main
try:
    main(["--help"])
except SystemExit as exc:
    code = exc.code
took = time.perf_counter() - began
heavy = sorted(m for m in sys.modules
               if m.split(".")[0] in ("docker", "pytest", "_pytest", "testinfra")
               or m == "labcoat.content" or m.startswith("labcoat.content."))
sys.stderr.write(json.dumps({"code": code, "seconds": took, "heavy": heavy}))
"""


def test_help_imports_neither_docker_pytest_nor_the_content_layer(tmp_path: Path, record_property) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LAB_DEBUG")}
    proc = subprocess.run(
        [sys.executable, "-c", _HELP_PROBE], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stderr)
    assert report["code"] == 0
    assert "Commands:" in proc.stdout
    assert report["heavy"] == []
    # Measured, not asserted tightly: a slow CI machine must not fail this test.
    record_property("lab_help_seconds", round(report["seconds"], 4))
    sys.stdout.write(f"`lab --help` in a fresh interpreter: {report['seconds'] * 1000:.0f} ms\n")
    assert report["seconds"] < 30


# ----------------------------------------------------------------------------- validate


def test_validate_a_valid_tree(cli, content_tree) -> None:
    result = cli("validate", str(content_tree.root))
    assert result.exit_code == OK, result
    assert "1 lab(s), 1 scenario(s), 0 quiz(zes), 1 image(s), all valid" in _flat(result.stderr)


def test_validate_uses_the_content_option(cli, content_tree) -> None:
    result = cli("--content", str(content_tree.root), "validate")
    assert result.exit_code == OK, result
    assert "all valid" in result.stderr


def test_validate_a_broken_yaml_file(cli, content_tree) -> None:
    content_tree.write("labs/x.yaml", BROKEN_LAB)
    result = cli("validate", str(content_tree.root))
    assert result.exit_code == CONTENT_INVALID, result
    err = result.stderr
    assert "labs/x.yaml:3:14: YAML syntax error: mapping values are not allowed here" in err
    assert "    fix: check the indentation and quoting" in err
    assert f"1 error(s) in {content_tree.root.resolve()}" in err
    assert "Traceback" not in err


def test_validate_a_single_file(cli, content_tree) -> None:
    path = content_tree.write("labs/x.yaml", BROKEN_LAB)
    result = cli("validate", str(path))
    assert result.exit_code == CONTENT_INVALID, result
    assert f"{path}:3:14: YAML syntax error" in result.stderr
    good = cli("validate", str(content_tree.path("labs/1.1.yaml")))
    assert good.exit_code == OK, good


def test_validate_json(cli, content_tree) -> None:
    content_tree.write("labs/x.yaml", BROKEN_LAB)
    content_tree.edit("labs/1.1.yaml", "  image: tiny\n", "  image: huge\n")
    result = cli("validate", "--json", str(content_tree.root))
    assert result.exit_code == CONTENT_INVALID, result
    data = json.loads(result.stdout)
    assert data["valid"] is False
    assert data["root"] == str(content_tree.root.resolve())
    assert data["errors"] == [
        {
            "file": "labs/x.yaml",
            "line": 3,
            "col": 14,
            "message": "YAML syntax error: mapping values are not allowed here",
            "fix": "check the indentation and quoting around this line; a ':' inside a value needs quotes",
        },
        {
            "file": "labs/1.1.yaml",
            "line": 6,
            "col": 10,
            "message": "sandbox.image 'huge' is not an image id",
            "fix": "known images: tiny",
        },
    ]


def test_validate_json_of_a_valid_tree(cli, content_tree) -> None:
    result = cli("validate", "--json", str(content_tree.root))
    assert result.exit_code == OK, result
    assert json.loads(result.stdout) == {"valid": True, "root": str(content_tree.root.resolve()), "errors": []}


# ----------------------------------------------------------------------------- list and show


def test_list_json(cli, content_tree) -> None:
    result = cli("--content", str(content_tree.root), "list", "--json")
    assert result.exit_code == OK, result
    data = json.loads(result.stdout)
    assert data["content"] == str(content_tree.root.resolve())
    assert data["labs"] == [
        {
            "id": "1.1",
            "title": "Tiny lab",
            "memory": "64m",
            "running": False,
            "sandbox": None,
            "parts": [{"id": "part1", "title": "First part", "points": 10, "passed": False}],
            "quiz": None,
        }
    ]


def test_list_refuses_invalid_content(cli, content_tree) -> None:
    content_tree.write("labs/x.yaml", BROKEN_LAB)
    result = cli("--content", str(content_tree.root), "list", "--json")
    assert result.exit_code == CONTENT_INVALID, result
    assert "labs/x.yaml:3:14" in result.stderr
    assert result.stdout == ""


def test_show_intro(cli, content_tree) -> None:
    result = cli("--content", str(content_tree.root), "show", "intro", "--lab", "1.1")
    assert result.exit_code == OK, result
    assert "Tiny lab" in result.stdout
    assert "Welcome." in result.stdout


def test_unknown_lab_is_a_usage_error_listing_the_labs(cli, content_tree) -> None:
    result = cli("--content", str(content_tree.root), "show", "intro", "--lab", "9.9")
    assert result.exit_code == USAGE, result
    assert result.stderr == "error: no lab '9.9'\nhint: labs here: 1.1 (see `lab list`)\n"
    assert "Traceback" not in result.stderr + result.stdout


def test_missing_content_folder_is_a_usage_error(cli, tmp_path: Path) -> None:
    result = cli("--content", str(tmp_path / "nowhere"), "list", "--json")
    assert result.exit_code == USAGE, result
    assert "does not exist" in result.stderr
    assert "hint:" in result.stderr


# ----------------------------------------------------------------------------- usage errors


def test_unknown_backend(cli) -> None:
    result = cli("--backend", "nope", "list")
    assert result.exit_code == USAGE, result
    assert "'nope' is not one of 'docker', 'local'" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_backend_alone(cli) -> None:
    result = cli("--backend", "nope")
    assert result.exit_code == USAGE, result
    assert "nope" in result.stderr


def test_unknown_command(cli) -> None:
    result = cli("explode")
    assert result.exit_code == USAGE, result
    assert "No such command 'explode'" in result.stderr
