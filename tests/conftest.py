"""Test isolation and the `docker` marker.

Every test gets its own state folder and a sandbox owner of its own session, so the
suite never touches a developer's running lab. Tests marked `docker` skip when no
engine answers, except under CI or LAB_REQUIRE_DOCKER=1, where they fail: a green run
must have tested the sandboxes for real.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OWNER = f"pytest-{os.getpid()}"
_docker_state: dict[str, object] = {}


def _require_docker() -> bool:
    return bool(os.environ.get("CI") or os.environ.get("LAB_REQUIRE_DOCKER"))


def docker_problem() -> str | None:
    """Why Docker cannot be used, or None when an engine answers (asked once per session)."""
    if "problem" not in _docker_state:
        try:
            from labcoat.backends.docker import connect

            connect()
            _docker_state["problem"] = None
        except Exception as exc:  # noqa: BLE001 - any failure means "no Docker"
            _docker_state["problem"] = str(exc)
    return _docker_state["problem"]  # type: ignore[return-value]


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("docker") is None:
        return
    problem = docker_problem()
    if problem is None:
        return
    if _require_docker():
        pytest.fail(f"Docker is required here (CI / LAB_REQUIRE_DOCKER) but not reachable: {problem}")
    pytest.skip(f"no Docker engine: {problem}")


@pytest.fixture(autouse=True)
def _isolation(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("LABCOAT_STATE", str(state))
    monkeypatch.setenv("LABCOAT_OWNER", OWNER)
    monkeypatch.setenv("LABCOAT_WARM", "0")  # no background server per test; tests/integration/test_warm.py tests it
    # no disk watcher per `lab start`; tests/unit/test_diskwatch.py and tests/integration/test_disk_bound.py turn it on
    monkeypatch.setenv("LABCOAT_DISKWATCH", "0")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.delenv("LABCOAT_CONTENT", raising=False)
    monkeypatch.delenv("LAB_DEBUG", raising=False)


@pytest.fixture(scope="session", autouse=True)
def _no_leftovers() -> Iterator[None]:
    """After the session, remove every container this test session labelled (and say so)."""
    yield
    if _docker_state.get("problem", "unknown") is not None:
        return
    from labcoat.backends import DEFAULT_BACKEND, get_backend

    names = {DEFAULT_BACKEND, os.environ.get("LABCOAT_BACKEND") or DEFAULT_BACKEND}
    for backend in [get_backend(name) for name in names if get_backend(name).is_container]:
        for machine in backend.find({"labcoat.owner": OWNER}):
            backend.remove(machine)


@pytest.fixture
def content_root() -> Path:
    return ROOT


class CliResult:
    def __init__(self, exit_code: int, stdout: str, stderr: str) -> None:
        self.exit_code, self.stdout, self.stderr = exit_code, stdout, stderr

    def __repr__(self) -> str:
        return f"<exit {self.exit_code}\nstdout: {self.stdout[-2000:]}\nstderr: {self.stderr[-2000:]}>"


@pytest.fixture
def cli():
    """Run `lab ARGS...` in-process through the real entry point (error handling included)."""
    from click.testing import CliRunner

    from labcoat.cli import main

    def invoke(*args: str, input: str | None = None) -> CliResult:
        runner = CliRunner()
        with runner.isolation(input=input) as streams:
            try:
                main(list(args))
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            out, err = streams[0].getvalue().decode(), streams[1].getvalue().decode()
        return CliResult(code, out, err)

    return invoke
