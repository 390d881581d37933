"""Lab 5.3 proven both ways on real sandboxes: fails fresh, fails every decoy, passes the solution twice."""

from __future__ import annotations

import json
import re
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
    # Generated decoys: every plausible wrong value the checks declare fails, for every answer key.
    families = {(f.part, f.key): f for f in report.mutations}
    assert {("part1", k) for k in ("largest_pid", "largest_name", "mem_free_kb", "mem_available_kb",
                                   "limit_bytes")} <= set(families)
    assert {("part3", "victim_pid"), ("part6", "leak_kib_per_s")} <= set(families)
    for family in report.mutations:
        # Each is rejected, or (a figure that drifted into the check's own tolerance by the replay) listed
        # as indistinct at check time: never accepted as it stands (labcoat.grading.selftest.replay_mutation).
        assert family.tried and family.ok, family.to_dict()
        assert all(m.got == "fail" or m.name in family.indistinct for m in family.tried), family.to_dict()
    assert "MemTotal, not MemFree" in {m.name for m in families["part1", "mem_free_kb"].tried}
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
    data = json.loads(result.stdout)
    # exit 4 means a check errored (infrastructure): name it, with its message, not the JSON's tail
    errored = [(p["part"], c["check"], c.get("found") or c.get("message"), c.get("error"))
               for p in data["parts"] for c in p["checks"] if c["status"] not in ("failed", "passed", "skipped")]
    assert result.exit_code == 1, (result.exit_code, errored, result.stderr[-2000:])
    for part in data["parts"]:
        assert part["status"] == "failed", part
        assert part["points"] == 0
        failed = [c for c in part["checks"] if c["status"] == "failed"]
        assert failed and all(c["expected"] and c["found"] for c in failed)
        assert all("truth" not in c for c in part["checks"])  # the learner's JSON never carries it
    assert cli("stop").exit_code == 0


def _figures(text: str) -> set[str]:
    return set(re.findall(r"\d{4,}", text))


# A live figure shown in another unit (kB as MiB or bytes...) is a leak too; MemFree and MemAvailable move
# every second, so a figure within 2% of one counts (the learner's own figures, echoed back, are excluded).
SCALES = (1, 1024, 1 / 1024, 1 / 1024**2, 1000, 1 / 1000)


def _near_figures(text: str, truths: set[int], own: set[int]) -> set[str]:
    """The numbers of 4 digits or more in `text` within 2% of a truth in any usual unit, the learner's aside."""
    found = {float(n) for n in re.findall(r"\d{4,}(?:\.\d+)?", text)} - {float(o) for o in own}
    return {f"{n:g} (near {t})" for n in found for t in truths for f in SCALES if abs(n - t * f) <= 0.02 * t * f}


@pytest.mark.flaky(reruns=1)  # failed once in 6 runs (session 5, cause not captured): docs/design.md "Known flakiness"
def test_failing_check_output_never_shows_the_live_figures(cli, backend):
    """MemTotal for MemAvailable fails, with words; no failing output holds MemFree, MemAvailable, the limit
    or the cache figures the check compared with (`--reveal` shows them, to prove they were there)."""
    from labcoat.runner.session import current_session

    assert cli("start", "5.3", "--quiet").exit_code == 0
    session = current_session(backend)
    main = session.main.machine

    def sh(cmd: str) -> str:
        return backend.run(main, ["/bin/sh", "-c", cmd], timeout=60).stdout

    meminfo = {line.split(":")[0]: int(line.split()[1]) for line in sh("cat /proc/meminfo").splitlines()}
    limit = sh("cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max").strip()
    sh("mkdir -p /root/lab; dd if=/dev/zero of=/root/lab/big.bin bs=1M count=64 status=none")
    # Wrong, but plausible: MemTotal for MemAvailable, the host's RAM for the limit, a cache that grew too little.
    answers = {"part1": f"largest_pid: 1\nlargest_name: docker-init\nmem_free_kb: 1234\n"
                        f"mem_available_kb: {meminfo['MemTotal']}\nlimit_bytes: {meminfo['MemTotal'] * 1024}\n",
               "part2": "cache_before_bytes: 1000\ncache_after_bytes: 2000\ncold_seconds: 1\nwarm_seconds: 2\n"}
    for part_id, text in answers.items():
        backend.run(main, ["/bin/sh", "-c", f'mkdir -p /root/answers; printf "%s" "$T" > /root/answers/{part_id}.txt'],
                    timeout=10, env={"T": text})
    plain = cli("check", "part1")
    plain2 = cli("check", "part2")
    learner = cli("check", "--json", "part1")
    revealed = cli("check", "--json", "--reveal", "part1")
    revealed2 = cli("check", "--json", "--reveal", "part2")
    assert plain.exit_code == plain2.exit_code == learner.exit_code == revealed.exit_code == revealed2.exit_code == 1
    own = {int(n) for text in answers.values() for n in re.findall(r"\d+", text)}
    # Within one revealed run, where nothing has drifted: no check shows its own truth (in any usual unit,
    # within 2%) in what a learner sees of it, its expected, found and hint.
    revealed_checks = [c for r in (revealed, revealed2) for c in json.loads(r.stdout)["parts"][0]["checks"]]
    figures = {}
    for c in revealed_checks:
        number = re.match(r"\d+", c.get("truth") or "")
        if number and int(number.group()) >= 10_000:  # a figure, not a PID or a count
            figures[c["check"]] = int(number.group())
            shown = " ".join(str(c.get(k) or "") for k in ("expected", "found", "hint"))
            leaked = _near_figures(shown, {figures[c["check"]]}, own)
            assert not leaked, f"{c['check']} shows its own truth {c['truth']}: {leaked}\n{shown}"
    assert {"test_mem_free", "test_mem_available", "test_limit"} <= set(figures)
    checks = {c["check"]: c for c in json.loads(revealed.stdout)["parts"][0]["checks"]}
    avail = checks["test_mem_available"]
    assert avail["status"] == "failed" and "MemTotal" in avail["found"]  # named, in words
    assert checks["test_limit"]["status"] == "failed" and "host" in checks["test_limit"]["found"]
    truths = {c["truth"].split()[0] for c in checks.values() if c.get("truth")}
    assert str(limit) in truths  # --reveal shows what was compared with
    stat = sh("cat /sys/fs/cgroup/memory/memory.stat 2>/dev/null || cat /sys/fs/cgroup/memory.stat")
    cache = {line.split()[1] for line in stat.splitlines() if line.split()[0] in ("total_cache", "cache", "file")}
    live = {str(limit), *cache, *truths} - {str(meminfo["MemTotal"]), str(meminfo["MemTotal"] * 1024)}
    for output in (plain.stdout, plain2.stdout, learner.stdout):
        leaked = _figures(output) & live
        assert not leaked, f"live figures in the learner's output: {leaked}\n{output}"
        assert "truth" not in output
        # MemFree and MemAvailable have moved since (seconds apart): search for figures near them, too.
        near = _near_figures(output, {*figures.values(), *(int(c) for c in cache if c.isdigit() and int(c) >= 10_000),
                                      meminfo["MemFree"], meminfo["MemAvailable"]}, own | {meminfo["MemTotal"] * 1024})
        assert not near, f"figures near the live ones in the learner's output: {near}\n{output}"
    # The learner's own (wrong) figures are shown back, the live ones are not.
    assert str(meminfo["MemTotal"]) in learner.stdout
    assert cli("stop").exit_code == 0


def _part3_sandbox(catalog, backend, seed: int):
    """Only lab 5.3's part 3 sandbox, prepared with `seed`."""
    from labcoat.runner.session import Sandbox, ensure_lab_image, labels_for, machine_spec
    from labcoat.runner.steps import prepare_part

    lab = catalog.lab("5.3")
    part = lab.part("part3")
    tag = ensure_lab_image(catalog, backend, part.sandbox.image, lambda m, f: None)
    machine = backend.start(machine_spec(part.sandbox, tag, None, str(seed)),
                            labels_for("selftest", lab.id, str(seed), part="part3"))
    sandbox = Sandbox(backend, machine, lab.id)
    prepare_part(catalog, sandbox, part)
    return sandbox


@pytest.mark.parametrize("seed", [11, 2024, 777777])
def test_part3_only_the_arithmetic_wins_on_real_sandboxes(catalog, backend, seed):
    """In real draws: the memcg victim is not the largest by RSS, not the top oom_score, not the highest adj,
    before and after the runbook's change (the kernel's own inputs, read from /proc)."""
    from labcoat.checking.testinfra_backend import make_host
    from labcoat.testing import predict_oom_victim

    sandbox = _part3_sandbox(catalog, backend, seed)
    try:
        host = make_host(backend, sandbox.machine)
        for stage in ("before", "after"):
            if stage == "after":
                host.run("for p in $(pgrep -x log-agent); do echo 350 > /proc/$p/oom_score_adj; done")
            pred = predict_oom_victim(host)
            ranked = [r for r in pred["ranked"] if (r["rss_pages"] or 0) > 1024]  # the services (>= 6 MiB)
            assert len(ranked) == 4, ranked
            victim = pred["victim_pid"]
            assert max(ranked, key=lambda r: r["rss_pages"])["pid"] != victim, (stage, ranked)
            assert pred["oom_score_pick"] != victim, (stage, ranked)
            assert max(ranked, key=lambda r: r["oom_score_adj"])["pid"] != victim, (stage, ranked)
            assert pred["ranked"][0]["points"] - pred["ranked"][1]["points"] > 1000, (stage, ranked)
    finally:
        backend.remove(sandbox.machine)
