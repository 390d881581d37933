"""Part 6's check measures the leak rate between the two reads of the leaking process itself.

Regression: under qemu TCG (the v2-cgroupfs VM lane) `lab selftest 5.3` failed part 6's first
solution pass on `test_growth_rate`: the rate was the growth over the time between the starts of
two 3 s-apart loops over /proc, and an emulated machine runs the loop and the leaking service late
by hundreds of ms. Each line now carries the uptime read just before that process's status, and the
window grows with LABCOAT_TIME_SCALE (at most 3x); the tolerance does not change.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

CHECKS = Path(__file__).resolve().parents[2] / "checks" / "lab_5_3"


@pytest.fixture
def part6(monkeypatch):
    monkeypatch.syspath_prepend(str(CHECKS))
    sys.modules.pop("test_part6", None)
    yield lambda: importlib.import_module("test_part6")
    sys.modules.pop("test_part6", None)


def test_each_process_is_timed_by_its_own_read(part6):
    mod = part6()
    # The leak (pid 30, "api server" with a space) grows 48 KiB/s; the loop reached it 0.8 s later the
    # second time than the first, a steady service (pid 20) did not move.
    first = "1 100.00 900 sleep\n20 100.01 102400 indexer\n30 100.02 20480 api server\nnot a line\n"
    second = "1 103.50 900 sleep\n20 103.60 102400 indexer\n30 103.82 20480 api server\n"
    second = second.replace("20480 api", f"{20480 + int(48 * 3.8)} api")
    growth = mod._growth(first, second)
    assert growth[30][0] == "api server"
    assert growth[30][2] == pytest.approx(48, rel=0.01)
    assert growth[20][2] == 0


def test_a_process_read_once_or_renamed_is_left_out(part6):
    mod = part6()
    growth = mod._growth("5 10.00 100 a\n6 10.00 100 b\n", "6 13.00 400 c\n7 13.00 100 d\n")
    assert growth == {}


@pytest.mark.parametrize(("scale", "window"), [("", 3), ("1", 3), ("2", 6), ("6", 9), ("junk", 3)])
def test_the_window_grows_with_the_time_scale_up_to_3x(part6, monkeypatch, scale, window):
    monkeypatch.setenv("LABCOAT_TIME_SCALE", scale)
    mod = part6()
    assert window == mod.WINDOW_S
    assert f"sleep {window}; " in mod.SCRIPT
    assert mod.RATE_TOLERANCE == 0.25


def test_the_read_loop_runs_and_parses_here(part6):
    """READ itself (sh, /proc of this host): this test's own process is listed with its uptime."""
    mod = part6()
    out = subprocess.run(["sh", "-c", mod.READ], capture_output=True, text=True, timeout=60, check=True).stdout
    procs = mod._sample(out)
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    me = procs[os.getpid()]
    assert me[1] > 0 and 0 <= uptime - me[2] < 60  # /proc/uptime ticks in 10 ms


def test_the_read_loop_succeeds_when_the_last_process_has_no_memory(part6, tmp_path):
    """Regression (CI, stop 18): the loop's status was its last `[ -n "$r" ] && echo`, so when the last
    /proc entry was a kernel thread or had just exited, `sh -c READ` failed with status 1."""
    mod = part6()
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "status").write_text("Name:\tinit\nVmRSS:\t  900 kB\n")
    (tmp_path / "1" / "comm").write_text("init\n")
    (tmp_path / "2").mkdir()  # a kernel thread: no smaps_rollup, no VmRSS
    (tmp_path / "2" / "status").write_text("Name:\tkthreadd\n")
    script = mod.READ.replace("/proc/[0-9]*", f"{tmp_path}/[0-9]*").replace("#/proc/", f"#{tmp_path}/")
    run = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert [line.split()[0] for line in run.stdout.splitlines()] == ["1"]


def test_a_window_where_nothing_grew_is_sampled_once_more(part6):
    """The leak starts over every 7.5-23 minutes, so one window can straddle its restart (a fresh
    sandbox's check errored so once under TCG): the check then takes a second pair of samples."""
    mod = part6()
    flat = {"first": "30 100.00 20480 api\n", "second": "31 103.00 900 api\n"}  # restarted: new pid
    grown = {"first": "31 110.00 900 api\n", "second": "31 113.00 1044 api\n"}

    class Host:
        def __init__(self):
            self.scripts = []

        def run(self, script):
            self.scripts.append(script)
            marker = script.split("\n")[1].split("; ")[0].removeprefix("echo ")
            return type("R", (), {"stdout": f"{marker}\n{grown['first']}{marker}\n{grown['second']}"})()

    host = Host()
    growth = mod.growth.__wrapped__(host, flat)
    assert len(host.scripts) == 1 and "sleep" in host.scripts[0]
    assert growth[31][2] == pytest.approx(48)
    host = Host()
    assert mod.growth.__wrapped__(host, grown)[31][2] == pytest.approx(48) and host.scripts == []
