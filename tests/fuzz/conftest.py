"""Fixtures of the fuzz tests; the harness itself is fuzz_harness.py (importable by the tests)."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


@pytest.fixture
def cli(cli, monkeypatch: pytest.MonkeyPatch):
    """The shared `cli` fixture, with JSON output flushed and no Docker asked who runs what.

    `lab list` asks the backend which sandboxes run; the fuzz cases are about content, so
    that question is answered "none" without Docker (tests/unit cover the real one).
    """
    from labcoat.app import App
    from labcoat.cli import info

    original = App.print_json

    def print_json(self: App, data: object) -> None:
        original(self, data)
        sys.stdout.flush()

    monkeypatch.setattr(App, "print_json", print_json)
    monkeypatch.setattr(info, "_running_labs", lambda app: {})
    cache = tempfile.mkdtemp(prefix="labcoat-fuzz-cache-")
    monkeypatch.setenv("XDG_CACHE_HOME", cache)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    yield cli
    shutil.rmtree(cache, ignore_errors=True)


@pytest.fixture
def scratch() -> Iterator[Callable[[], Path]]:
    """Fresh folders for each hypothesis example (tmp_path is shared by all of a test's examples)."""
    made: list[str] = []

    def new() -> Path:
        path = tempfile.mkdtemp(prefix="labcoat-fuzz-")
        made.append(path)
        return Path(path)

    yield new
    for path in made:
        shutil.rmtree(path, ignore_errors=True)




@pytest.fixture
def warm(cli, scratch) -> Callable[..., None]:
    """Run commands once in this process first, so forked cases inherit every lazy import (~1.5 s each)."""

    done: list[bool] = []

    def run(*commands: list[str]) -> None:
        if done:
            return
        done.append(True)
        for args in commands:
            result = cli(*args)
            assert result.exit_code in (0, 1), result

    return run


@pytest.fixture(autouse=True)
def collected(request: pytest.FixtureRequest) -> Iterator[None]:
    """With LABCOAT_FUZZ_COLLECT, a test fails after all its cases ran when any case failed."""
    from fuzz_harness import COLLECT

    if not COLLECT:
        yield
        return
    start = Path(COLLECT).stat().st_size if Path(COLLECT).exists() else 0
    yield
    with open(COLLECT, encoding="utf-8") as fh:
        fh.seek(start)
        import json

        rows = [json.loads(line) for line in fh if line.strip()]
    bad = [r for r in rows if r["problems"]]
    if bad:
        pytest.fail(f"{len(bad)} of {len(rows)} cases failed, e.g. {bad[0]['case']!r}: {bad[0]['problems']}")
