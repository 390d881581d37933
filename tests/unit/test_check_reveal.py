"""`lab check --reveal` shows the answers, so its passes never count towards progress (no Docker)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from labcoat.checking.run import CheckResult, PartResult
from labcoat.runner import progress


@pytest.fixture
def passing_lab(monkeypatch):
    """A running 5.3 session (faked) whose every part passes."""
    main = SimpleNamespace(machine=SimpleNamespace(id="fake-id", name="lab-5.3-fake", labels={}))
    session = SimpleNamespace(lab_id="5.3", main=main, all=[main])
    monkeypatch.setattr("labcoat.runner.session.current_session", lambda backend, *a, **k: session)

    def run_checks(catalog: Any, session: Any, lab: Any, parts: list[Any]) -> list[PartResult]:
        results = []
        for part in parts:
            result = PartResult(part.id, part.title)
            result.checks.append(CheckResult(part.id, "test_x", "x", "passed", 1.0, 1.0))
            results.append(result)
        return results

    monkeypatch.setattr("labcoat.checking.run.run_checks", run_checks)


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_a_revealed_run_is_not_recorded(cli, passing_lab, json_flag):
    result = cli("check", "--reveal", *json_flag, "part1")
    assert result.exit_code == 0, result
    assert progress.load("5.3") == {"parts": {}}
    if not json_flag:
        assert "not recorded" in result.stdout
    result = cli("check", *json_flag, "part1")  # the same pass without --reveal counts
    assert result.exit_code == 0, result
    assert progress.load("5.3")["parts"]["part1"]["passed"] is True


def test_the_help_says_so(cli):
    result = cli("check", "--help")
    assert result.exit_code == 0
    assert "not count towards" in " ".join(result.stdout.split())
