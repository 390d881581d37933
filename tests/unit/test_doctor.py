"""`lab doctor`'s checks that need no engine."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

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
