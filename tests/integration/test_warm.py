"""The warm `lab check` server gives exactly what a cold `lab check` gives, and goes away cleanly."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.docker


def _lab(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "labcoat", *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def test_warm_check_matches_cold_check(tmp_path):
    env = {**os.environ, "LABCOAT_STATE": str(tmp_path), "LABCOAT_WARM": "0", "COLUMNS": "120"}
    assert _lab("start", "5.3", "--quiet", env=env).returncode == 0
    try:
        cold = _lab("check", "part1", "--json", env=env)
        warm_env = {**env, "LABCOAT_WARM": "1"}
        first = _lab("check", "part1", "--json", env=warm_env)  # runs here and starts the server
        sock = tmp_path / "warm.sock"
        deadline = time.monotonic() + 30
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sock.exists(), "the first warm-enabled `lab check` did not start a server"
        assert oct(sock.stat().st_mode & 0o777) == "0o600"
        served = _lab("check", "part1", "--json", env=warm_env)
        for result in (first, served):
            assert result.returncode == cold.returncode == 1  # nothing answered yet: checks fail
            assert result.stdout.replace(" ", "") != ""
        import json

        strip = lambda out: [(c["check"], c["status"]) for p in json.loads(out)["parts"] for c in p["checks"]]  # noqa: E731
        assert strip(served.stdout) == strip(cold.stdout)
        # A usage error keeps its exit code through the server too.
        assert _lab("check", "nope", env=warm_env).returncode == 2
    finally:
        stopped = subprocess.run([sys.executable, "-m", "labcoat.warm", "stop"], env={**env, "LABCOAT_WARM": "1"},
                                 capture_output=True, timeout=30, check=False)
        assert stopped.returncode == 0
        _lab("stop", env=env)
    assert not (tmp_path / "warm.sock").exists()
