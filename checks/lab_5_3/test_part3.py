"""Part 3: who dies in a memory-cgroup OOM. Judged by the kernel's arithmetic and by the kill itself."""

from __future__ import annotations

import pytest
from lab53 import ANSWERS_HINT, answers_of, snapshot

from labcoat.testing import expect, predict_oom_victim

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


def test_log_agent_adj(live):
    """log-agent's oom_score_adj is 350, as the runbook asks."""
    rows = [line.split() for line in live["log_agent"].splitlines() if line.strip()]
    values = {int(adj) for _, adj in rows}
    expect(values == {ADJ}, expected=f"oom_score_adj {ADJ} for log-agent",
           found=", ".join(f"pid {p}: {a}" for p, a in rows) or "no log-agent process (was it killed? `lab reset part3`)",
           hint="each process has a writable /proc/PID/oom_score_adj")


def test_prediction_follows_memcg_arithmetic(host, answers, record):
    """Your predicted victim is the one the memcg OOM killer's arithmetic picks (not /proc/PID/oom_score)."""
    if record and record.get("prediction"):
        # Judge the prediction that was on file when the OOM was provoked.
        pred = record["prediction"]
        predicted = pred.get("learner_pid")
    else:
        pred = predict_oom_victim(host)
        predicted = int(answers["victim_pid"]) if answers.get("victim_pid", "").isdigit() else None
    expect(predicted is not None and predicted == pred["victim_pid"],
           expected="the PID with the highest badness: RSS pages + oom_score_adj x (limit in pages / 1000)",
           found=f"pid {predicted}" if predicted else f"no victim_pid recorded ({ANSWERS_HINT})",
           hint="inside a memory cgroup the adj is scaled by the cgroup's limit, not by the host's RAM; "
                "compare RSS in pages with adj x limit/1000 for each process")


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
    expect(kills == 1 and [g["pid"] for g in gone] == [predicted],
           expected=f"one OOM kill (counter +1), and pid {predicted} gone",
           found=f"{kills} kill(s); gone: " + (", ".join(f"{g['comm']} ({g['pid']})" for g in gone) or "nobody"),
           hint="record victim_pid before provoking; `lab reset part3` gives you a fresh set of processes")
