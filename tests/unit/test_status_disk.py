"""`lab status`'s disk lines: each sandbox's writable layer against its limit, and what bounds it (no Docker)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from fakes import FakeBackend

from labcoat.backends.base import MachineSpec
from labcoat.cli.info import disk_layers, disk_lines
from labcoat.runner import diskwatch
from labcoat.runner.session import LabSession, Sandbox, labels_for

pytestmark = pytest.mark.usefixtures("watcher_on")  # tests/unit/conftest.py

MiB = 1 << 20


class Watched(FakeBackend):
    watches_layers = True


def _session(backend):
    main = backend.start(MachineSpec(image="x", memory=1), labels_for("lab", "9.9"))
    own = backend.start(MachineSpec(image="x", memory=1), {**labels_for("lab", "9.9"), "labcoat.part": "part3"})
    return LabSession("9.9", Sandbox(backend, main, "9.9"), {"part3": Sandbox(backend, own, "9.9")})


def test_status_shows_each_sandboxs_layer_and_says_when_one_is_full():
    backend = Watched()
    session = _session(backend)
    main, own = session.main.machine, session.parts["part3"].machine
    diskwatch._write_state({"updated": time.time(), "sandboxes": {
        main.id: {"name": main.name, "used": 64 * MiB, "limit": 256 * MiB, "full": False, "since": None},
        own.id: {"name": own.name, "used": 400 * MiB, "limit": 256 * MiB, "full": True, "since": time.time()},
    }})
    layers = disk_layers(SimpleNamespace(backend=backend), session)
    assert layers["main"] == {"sandbox": main.name, "used": 64 * MiB, "limit": 256 * MiB, "full": False,
                              "bound": "disk watcher"}
    assert layers["part3"]["full"] is True
    written, full = disk_lines({"per_file": 256 * MiB, "quota": None, "layers": layers})
    assert written == "written      main 64 MiB, part3 400 MiB (limit 256 MiB each, kept by the disk watcher)"
    assert full.startswith(f"FULL: the disk of sandbox {own.name} is full: it holds 400 MiB")


def test_status_says_when_the_disk_is_not_watched_now_or_bounded_by_the_engine():
    backend = Watched()
    session = _session(backend)
    layers = disk_layers(SimpleNamespace(backend=backend), session)  # no watcher has written anything
    assert {layer["bound"] for layer in layers.values()} == {"disk watcher (not running now)"}
    [line] = disk_lines({"layers": layers})
    assert "not bounded now" in line and "`lab check` or `lab status` starts the watcher" in line
    plain = FakeBackend()  # a backend whose layers cannot be measured
    [line] = disk_lines({"layers": disk_layers(SimpleNamespace(backend=plain), _session(plain))})
    assert "not bounded on this backend (only each file)" in line
    assert disk_lines({"quota": "256m", "layers": layers}) == [
        "whole disk at most 256m per sandbox (the engine's quota on the writable layer)"]
