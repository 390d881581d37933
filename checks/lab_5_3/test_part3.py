"""Part 3: who dies in a memory-cgroup OOM. Judged by the kernel's arithmetic and by the kill itself."""

from __future__ import annotations

import pytest
from lab53 import ANSWERS_HINT, answers_of, snapshot

from labcoat.testing import exit_race, expect, judge_choice, predict_oom_victim

ADJ = 350
SCRIPT = """
echo @@; cat /root/answers/part3.txt 2>/dev/null
echo @@; for p in $(pgrep -x log-agent); do echo "$p $(cat /proc/$p/oom_score_adj)"; done
"""


@pytest.fixture(scope="module")
def live(host):
    return snapshot(host, SCRIPT, ["answers", "log_agent"])


answers = answers_of("part3")


@pytest.fixture(scope="module")
def record(sandbox):
    return sandbox.run_record("lab53-part3-oom")


def test_log_agent_adj(live, record):
    """log-agent's oom_score_adj is 350, as the runbook asks."""
    rows = [line.split() for line in live["log_agent"].splitlines() if line.strip()]
    if not rows and record:
        # Killed in the provoked OOM (the kernel's exit race can take it right after the victim): its
        # adj as the runner saw it just before the provocation.
        after = {p["pid"] for p in record["procs"].get("after", [])}
        rows = [[str(p["pid"]), str(p.get("oom_score_adj"))] for p in record["procs"].get("before", [])
                if p.get("comm") == "log-agent" and p["pid"] not in after]
    values = {int(adj) for _, adj in rows}
    expect(values == {ADJ}, expected=f"oom_score_adj {ADJ} for log-agent",
           found=", ".join(f"pid {p}: {a}" for p, a in rows) or "no log-agent process (was it killed? `lab reset part3`)",
           hint="each process has a writable /proc/PID/oom_score_adj")


def _mistakes(ranked, field):
    """The plausible wrong predictions: what a learner gets by any rule but the memcg arithmetic."""
    if not ranked:
        return {}
    by = {
        "the largest process by RSS": max(ranked, key=lambda r: (r.get("rss_pages") or 0, r["pid"])),
        "the top of /proc/PID/oom_score (scaled by the host's RAM, not the cgroup's limit)":
            max(ranked, key=lambda r: (r.get("oom_score") or -1, r["pid"])),
        "the highest oom_score_adj": max(ranked, key=lambda r: (r.get("oom_score_adj") or 0, r["pid"])),
    }
    if len(ranked) > 1:
        by["the runner-up by the memcg arithmetic"] = ranked[1]
    return {name: row[field] for name, row in by.items()}


def test_prediction_follows_memcg_arithmetic(host, answers, record):
    """Your predicted victim is the one the memcg OOM killer's arithmetic picks (not /proc/PID/oom_score)."""
    # The truth: the runner's arithmetic over the processes as they were when the OOM was provoked
    # (or, before that, as they are now).
    pred = record["prediction"] if record and record.get("prediction") else predict_oom_victim(host)
    ranked = pred.get("ranked") or []
    hint = ("inside a memory cgroup the adj is scaled by the cgroup's limit, not by the host's RAM; "
            "compare RSS in pages with adj x limit/1000 for each process")
    judge_choice(answers.get("victim_pid"), pred["victim_pid"], key="victim_pid",
                 what="the PID with the highest badness: RSS pages + oom_score_adj x (limit in pages / 1000)",
                 mistakes=_mistakes(ranked, "pid"), hint=hint if answers.get("victim_pid") else ANSWERS_HINT)
    judge_choice(answers.get("victim_name"), pred["victim"], key="victim_name",
                 what="the name (comm) of that process", mistakes=_mistakes(ranked, "comm"), hint=hint)
    if record and record.get("prediction"):
        on_file = record["prediction"].get("learner_pid")
        expect(str(on_file) == answers.get("victim_pid"),
               expected="the same victim_pid as was on file when you provoked the OOM",
               found=f"{answers.get('victim_pid')} now, {on_file} then",
               hint="a prediction counts when it is made before the OOM: `lab reset part3` to try again")


def test_oom_killed_the_predicted_process(record):
    """You provoked the OOM, and exactly one process died: the one you predicted."""
    if not record:
        expect(False, expected="the OOM provoked with `lab provoke part3` (after recording your prediction)",
               found="it has not been provoked yet", hint="run `lab provoke part3` on the host")
    pred = record.get("prediction") or {}
    before = {p["pid"]: p for p in record["procs"].get("before", [])}
    after = {p["pid"] for p in record["procs"].get("after", [])}
    gone = [before[pid] for pid in before if pid not in after]
    kills = sum(e.get("new_kills", 1) for e in record["events"] if e["kind"] == "oom_kill")
    predicted = pred.get("learner_pid")
    # Two kills at once, the kernel's top pick and then its runner-up (or the allocator itself), is the
    # kernel's exit race, not the learner's mistake: the first victim is marked done (MMF_OOM_SKIP) in
    # exit_mmap() before its pages are uncharged, and the allocator's retry kills the next in line.
    race = exit_race(kills, [g["pid"] for g in gone], pred.get("ranked") or [])[:1] == (predicted,)
    expect((kills == 1 and [g["pid"] for g in gone] == [predicted]) or race,
           expected=f"one OOM kill (counter +1), and pid {predicted} gone",
           found=f"{kills} kill(s); gone: " + (", ".join(f"{g['comm']} ({g['pid']})" for g in gone) or "nobody"),
           hint="record victim_pid before provoking; `lab reset part3` gives you a fresh set of processes")
