"""Lab 5.3 proven both ways on real sandboxes: fails fresh, fails every decoy, passes the solution twice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labcoat.backends.docker import DockerBackend
from labcoat.content.catalog import Catalog
from labcoat.grading.selftest import run_selftest
from labcoat.runner.session import L_OWNER, owner

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load(ROOT)


@pytest.fixture
def backend():
    b = DockerBackend()
    yield b
    for machine in b.find({L_OWNER: owner()}):
        b.remove(machine)


def test_selftest_every_part_both_ways(catalog, backend):
    lab = catalog.lab("5.3")
    report = run_selftest(catalog, backend, lab)
    rows = {(r.part, r.stage): r for r in report.rows}
    failures = [f"{r.part} {r.stage}: expected {r.expected}, got {r.got} ({r.detail})" for r in report.rows if not r.ok]
    assert not failures, "\n".join(failures)
    for part in lab.parts:
        stages = ["fresh sandbox", *(f"decoy {d.name}" for d in part.decoys), "solution", "solution again"]
        for stage in stages:
            row = rows[(part.id, stage)]
            # A skip (e.g. no PSI on this host) would hide everything: here every stage really ran.
            assert row.got == row.expected, f"{part.id} {stage}: {row.got}"
    assert backend.find({L_OWNER: owner(), "labcoat.kind": "selftest"}) == []  # nothing left behind


NONSENSE = {
    "part1": "largest_pid: 1\nlargest_name: init\nmem_free_kb: 12345\nmem_available_kb: 67890\nlimit_bytes: 42\n",
    "part2": "cache_before_bytes: 0\ncache_after_bytes: 999999999\ncold_seconds: 9\nwarm_seconds: 0.001\n",
    "part3": "victim_pid: 1\nvictim_name: docker-init\n",
    "part4": "psi_some: some avg10=1.00 avg60=1.00 avg300=1.00 total=1\npsi_full: full avg10=1.00 avg60=1.00 avg300=1.00 total=1\n",
    "part5": "limit_bytes: 1\nusage_bytes: 1\noom_kill: 7\noomkilled_flag: maybe\n",
}


def test_nonsense_answers_fail_every_part(cli, backend, catalog):
    assert cli("start", "5.3", "--quiet").exit_code == 0
    from labcoat.runner.session import current_session

    session = current_session(backend)
    for part_id, text in NONSENSE.items():
        sandbox = session.for_part(part_id)
        backend.put_bytes(sandbox.machine, text.encode(), f"/root/answers/{part_id}.txt")
    result = cli("check", "--json")
    assert result.exit_code == 1, result
    data = json.loads(result.stdout)
    for part in data["parts"]:
        assert part["status"] == "failed", part
        assert part["points"] == 0
        failed = [c for c in part["checks"] if c["status"] == "failed"]
        assert failed and all(c["expected"] and c["found"] for c in failed)
    assert cli("stop").exit_code == 0
