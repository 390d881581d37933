"""Fuzz: a part's answers file (`/root/answers/PART.txt`, what `answer PART KEY VALUE` writes) through the checks.

A learner can write anything into that file (`answer` is a convenience; `echo ... >` works
too). The checks read it with `labcoat.testing.parse_answers` inside the part's snapshot and
hand the values to `judge_number`, `judge_choice`, `parse_size` and their own parsers. Each
case writes one hostile answers file, built from the keys the checks read with hostile
values, or a hostile file outright, and runs every part's real check file through
`labcoat.checking.run.run_checks` (what `lab check` and `lab grade` run) in a forked child.
Only the sandbox is played: a fake testinfra host answers each part's snapshot command with
a fixed, consistent world (the live sections) after the answers file's text, and the runner
records, `docker inspect` and the container cgroup come from the same world
(`test_the_world_is_live` proves the right answers pass in it, so the checks really judge).

Whatever the file: every check ends passed, failed or skipped, never "error" (an error is
an infrastructure failure: `lab grade` would call the submission ungradable), no traceback,
within the deadline, nothing opened outside the content.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fuzz_harness import ROOT, fuzz_settings, run_forked
from hostile_inputs import TOKENS, text_payload
from hypothesis import example, given
from hypothesis import strategies as st

CHECKS = ROOT / "checks" / "lab_5_3"
CONTENT = [ROOT / d for d in ("labs", "checks", "scenarios", "quizzes", "images")]
KEYS = sorted(set(re.findall(r'answers\.get\("([a-z0-9_]+)"', "".join(p.read_text() for p in CHECKS.glob("*.py"))))
              | {"psi_some", "psi_full"})
LIMIT5 = 96 * 1024 * 1024

# The world each part's sandbox shows: the snapshot's sections after "answers", the runner's records,
# the learner's container. Consistent, so that RIGHT answers pass (test_the_world_is_live).
WORLD: dict[str, dict[str, Any]] = {
    "part1": {"sections": [
        "    1 docker-init     4   1000\n   20 indexer  40000 400000\n   21 api-server 90000 200000\n"
        "   22 cron 30000 50000\n   99 ps 1000 2000",
        "MemTotal:       16000000 kB\nMemFree:         8000000 kB\nMemAvailable:   12000000 kB\nCached:  2000000 kB",
        "268435456", "50000000"]},
    "part2": {"sections": ["67108864", "67108864", "total_cache 70000000\ncache 70000000\nrss 1000", "90000000",
                           "20000"]},
    "part3": {"sections": ["41 350"], "records": {"lab53-part3-oom": {
        "procs": {"before": [{"pid": 41, "comm": "log-agent", "oom_score_adj": 350},
                             {"pid": 42, "comm": "cache-warmer", "oom_score_adj": 0},
                             {"pid": 43, "comm": "api", "oom_score_adj": 0}],
                  "after": [{"pid": 41, "comm": "log-agent"}, {"pid": 43, "comm": "api"}]},
        "prediction": {"victim_pid": 42, "victim": "cache-warmer", "learner_pid": 42, "ranked": [
            {"pid": 42, "comm": "cache-warmer", "rss_pages": 5000, "oom_score_adj": 0, "oom_score": 300},
            {"pid": 41, "comm": "log-agent", "rss_pages": 1000, "oom_score_adj": 350, "oom_score": 800},
            {"pid": 43, "comm": "api", "rss_pages": 900, "oom_score_adj": 0, "oom_score": 100}]},
        "events": [{"kind": "oom_kill", "new_kills": 1}]}}},
    "part4": {"sections": [], "records": {"lab53-part4-pressure": {"samples": [
        {"t": i * 0.25, "host_psi_some_total": 1_000_000 + i * 100_000, "host_psi_some_avg10": 1.5,
         "host_psi_full_total": 500_000 + i * 50_000, "host_psi_full_avg10": 0.8} for i in range(8)]}}},
    "part5": {"sections": [],
              "container": {"HostConfig": {"Memory": LIMIT5, "MemorySwap": LIMIT5},
                            "State": {"Running": True, "OOMKilled": False}},
              "cgroup": {"limit": LIMIT5, "usage": 5_000_000, "oom_kill": 1}},
    "part6": {"sections": ["30 100.00 20480 api server\n20 100.01 102400 indexer",
                           "30 103.00 20624 api server\n20 103.01 102400 indexer",
                           "30 5000\n20 100\n100\n1000.5"]},
}
RIGHT = {  # the right answers in that world
    "part1": "largest_pid: 21\nlargest_name: api-server\nmem_free_kb: 8000000\nmem_available_kb: 12000000\n"
             "limit_bytes: 268435456\n",
    "part2": "cache_before_bytes: 5000000\ncache_after_bytes: 70000000\ncold_seconds: 0.5\nwarm_seconds: 0.02\n",
    "part3": "victim_pid: 42\nvictim_name: cache-warmer\n",
    "part4": 'psi_some: "some avg10=1.50 avg60=0.50 avg300=0.10 total=1250000"\n'
             'psi_full: "full avg10=0.80 avg60=0.30 avg300=0.05 total=625000"\n',
    "part5": "limit_bytes: 100663296\nusage_bytes: 5000000\noom_kill: 1\noomkilled_flag: false\n",
    "part6": "leak_name: api server\nleak_kib_per_s: 48\n",
}
MARKER = "@@labcoat-section@@"  # lab53.snapshot's separator before it was made unguessable


class FakeHost:
    """A testinfra host that plays one part's sandbox: the snapshot command gets the world's sections."""

    def __init__(self, part: str, answers: str) -> None:
        self.part, self.answers = part, answers

    def run(self, command: str, *args: Any) -> SimpleNamespace:
        marker = re.match(r"\s*echo (\S+);", command)
        sections = [self.answers, *WORLD[self.part]["sections"]]
        out = "".join(f"{marker.group(1)}\n{text}\n" for text in sections) if marker else ""
        return SimpleNamespace(stdout=out, stderr="", rc=0, exit_status=0, succeeded=True, failed=False)

    def check_output(self, command: str, *args: Any) -> str:
        raise AssertionError("the world gives every record: predict_oom_victim must not run")


def play_sandboxes(monkeypatch: pytest.MonkeyPatch, answers: dict[str, str]) -> None:
    """`run_checks` as `lab check` calls it, every part's sandbox played by FakeHost and the world."""
    from labcoat import hostinfo
    from labcoat.checking import run, testinfra_backend
    from labcoat.testing import SandboxInfo

    def sandbox_info(sandbox: Any, memory_limit: int, answers_dir: str = "/root/answers") -> SandboxInfo:
        world = WORLD[sandbox.part]
        return SandboxInfo(lab_id="5.3", name=f"fake-{sandbox.part}", seed=1, memory_limit=memory_limit,
                           backend="fake", cgroup_version=1, _answers=lambda part: answers[part],
                           _records=lambda name: world.get("records", {}).get(name),
                           _inspect=lambda name: world.get("container"),
                           _container_cgroup=lambda name: SimpleNamespace(**world["cgroup"]) if "cgroup" in world
                           else None)

    monkeypatch.setattr(run, "sandbox_info", sandbox_info)
    monkeypatch.setattr(testinfra_backend, "make_host", lambda backend, machine: FakeHost(machine.id, answers[machine.id]))
    monkeypatch.setattr(hostinfo, "missing", lambda requires: [])  # every part runs, whatever this host lacks


class Session:
    def for_part(self, part_id: str) -> SimpleNamespace:
        return SimpleNamespace(part=part_id, backend=None, machine=SimpleNamespace(id=part_id))


def check_all(catalog: Any) -> list[dict[str, str]]:
    from labcoat.checking.run import run_checks

    lab = catalog.lab("5.3")
    return [{"part": c.part, "check": c.check, "status": c.status, "message": (c.message or "")[:300]}
            for r in run_checks(catalog, Session(), lab, list(lab.parts)) for c in r.checks]


@pytest.fixture(scope="module")
def catalog() -> Any:
    from labcoat.content.catalog import Catalog

    return Catalog.load(ROOT)


def test_the_world_is_live(catalog, monkeypatch) -> None:
    """Right answers pass every check that reads answers in the played world; no answers fail them (not error)."""
    play_sandboxes(monkeypatch, RIGHT)
    right = check_all(catalog)
    assert len({r["part"] for r in right}) == 6
    assert all(r["status"] == "passed" for r in right), [r for r in right if r["status"] != "passed"]
    play_sandboxes(monkeypatch, dict.fromkeys(RIGHT, ""))
    nothing = {(r["check"], r["status"]) for r in check_all(catalog)}
    assert ("test_mem_free", "failed") in nothing and not any(s == "error" for _, s in nothing), nothing


digits = st.sampled_from(["\u00b2", "\u0663\u0663", "\uff11\uff12", "\U0001d7d9", "\u2460", "1.2.3", "1e999",
                          "-0", "+5", "0x10", "1_000", "nan", "inf", "-inf", "9" * 5000, "9" * 4000, "1" + "0" * 400])
leaf = st.one_of(st.sampled_from(TOKENS), text_payload(), digits, st.integers().map(str),
                 st.floats().map(str), st.sampled_from(RIGHT["part4"].splitlines()).map(lambda s: s.split(": ", 1)[1]),
                 st.builds(lambda kind, a, t: f"{kind} avg10={a} avg60=0 avg300=0 total={t}",
                           st.sampled_from(["some", "full", "sone"]), digits, digits),
                 st.builds(lambda kind, t: f'"{kind} avg10=1.50 avg60=0.50 avg300=0.10 total={t}"',
                           st.sampled_from(["some", "full"]), st.integers(0, 2_000_000).map(str) | digits))
line = st.builds(lambda key, sep, value: f"{key}{sep}{value}", st.sampled_from(KEYS) | st.text(max_size=8),
                 st.sampled_from([": ", "=", ":", " = ", ":\t"]), leaf)
structured = st.lists(line | st.sampled_from(["# comment", "", "\ufeff", "no separator", MARKER, "\x00"]),
                      max_size=len(KEYS) + 4).map("\n".join)
whole = st.sampled_from(["", "\n" * 10_000, "x" * 300_000, "k: " + "v" * 300_000, "\x00" * 1000,
                         "".join(f"{k}: {'9' * 5000}\n" for k in KEYS), "".join(f"{k}: \u00b2\n" for k in KEYS),
                         "".join(f"{k}={k}\n" for k in KEYS) * 2000, "\ud800 lone surrogate", "\x1b[2J\x9b31m"])


@fuzz_settings(default=20)
@given(text=st.one_of(structured, structured, structured, whole, st.text(max_size=300)),
       part_only=st.sampled_from([None] * 3 + sorted(RIGHT)))
@example(text="".join(f"{k}: {'9' * 5000}\n" for k in KEYS), part_only=None)
@example(text="".join(f"{k}: \u00b2\n" for k in KEYS), part_only=None)
@example(text='psi_some: "some avg10=1.2.3 avg60=0 avg300=0 total=1250000"\npsi_full: "full avg10=0.80 avg60=0.30 '
         'avg300=0.05 total=625000"\n', part_only=None)
@example(text='psi_some: "some avg10=1.50 avg60=0.50 avg300=0.10 total=' + "1" * 5000 + '"\n', part_only=None)
@example(text="cold_seconds: inf\nwarm_seconds: inf\ncache_before_bytes: 1e999\ncache_after_bytes: nan\n", part_only=None)
@example(text=f"{MARKER}\nnot a size\n{MARKER}\nx\n{MARKER}\nrss\n{MARKER}\n{MARKER}\n", part_only=None)
def test_lab_answers_files(catalog, monkeypatch, text: str, part_only: str | None) -> None:
    # One hostile file for every part (the right answers elsewhere when `part_only` names one part).
    answers = {part: text if part_only in (None, part) else RIGHT[part] for part in RIGHT}
    play_sandboxes(monkeypatch, answers)

    def case() -> list[tuple[int, str, str]]:
        rows = check_all(catalog)
        return [(0, json.dumps(rows, ensure_ascii=True), "")]

    outcome = run_forked(case, allowed=CONTENT)
    # pytest (run in-process by run_checks) opens the temp folder itself, a folder, not a file in it.
    outcome.outside = [p for p in outcome.outside if p != os.path.realpath(tempfile.gettempdir())]
    rows = json.loads(outcome.stdout) if outcome.exit_codes else []
    errors = [f"{r['part']} {r['check']}: {r['message']}" for r in rows if r["status"] == "error"]
    parts = {r["part"] for r in rows}
    extra = ([f"checks ended in error (an infrastructure failure for the learner's file): {errors[:3]}"] if errors else [])
    extra += [f"parts without a verdict: {sorted(set(RIGHT) - parts)}"] if rows and parts != set(RIGHT) else []
    outcome.check(f"answers file (for {part_only or 'every part'}) {text[:3000]!r}", extra=extra)


def test_keys_are_the_checks_keys() -> None:
    assert {"largest_pid", "mem_free_kb", "psi_some", "leak_kib_per_s", "oomkilled_flag"} <= set(KEYS)
    assert all(re.fullmatch(r"[a-z0-9_]+", k) for k in KEYS)
    assert {k for text in RIGHT.values() for k in re.findall(r"^(\w+):", text, re.M)} <= set(KEYS)


def test_the_right_answers_parse(catalog) -> None:
    from labcoat.testing import parse_answers

    assert parse_answers(RIGHT["part4"])["psi_some"].startswith('"some avg10=1.50')
    assert Path(CHECKS / "lab53.py").is_file()
