"""Two OOM kills in a row: the kernel's exit race is told apart from a wrong prediction.

Seen in CI on 2026-12-02 (tests/integration/test_grade.py, part 3 at 10/25): dmesg showed the
predicted victim and then the runner-up killed 23 ms apart, the memcg at 190 of 256 MiB at the
second kill (exit_mmap sets MMF_OOM_SKIP before the victim's pages are uncharged).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from labcoat.runner.observing import exit_race
from labcoat.testing import CheckFailed

CHECKS = Path(__file__).resolve().parents[2] / "checks" / "lab_5_3"
RANKED = [{"pid": 22, "comm": "cron-runner"}, {"pid": 37, "comm": "log-agent"}, {"pid": 12, "comm": "report-gen"}]


@pytest.mark.parametrize(("kills", "gone", "ranked", "race"), [
    (2, [22, 37], RANKED, (22, 37)),  # the top, then the runner-up: the race
    (2, [22], RANKED, (22,)),         # the second was the allocator itself (not in the snapshot)
    (1, [22], RANKED, ()),            # one kill: no race to explain
    (2, [22, 12], RANKED, ()),        # the second was not the runner-up
    (2, [37], RANKED, ()),            # the top survived
    (3, [22, 37, 12], RANKED, ()),    # three kills are never the race
    (2, [22, 37], [], ()),            # no ranking recorded: nothing to explain it with
])
def test_exit_race(kills, gone, ranked, race):
    assert exit_race(kills, gone, ranked) == race


@pytest.fixture
def part3(monkeypatch):
    monkeypatch.syspath_prepend(str(CHECKS))
    sys.modules.pop("test_part3", None)
    yield importlib.import_module("test_part3")
    sys.modules.pop("test_part3", None)


def _record(learner_pid, gone, kills):
    before = [{"pid": r["pid"], "comm": r["comm"]} for r in RANKED]
    return {"prediction": {"learner_pid": learner_pid, "victim_pid": 22, "ranked": RANKED},
            "procs": {"before": before, "after": [p for p in before if p["pid"] not in gone]},
            "events": [{"kind": "oom_kill", "new_kills": 1}] * kills}


def test_the_check_accepts_the_race_for_the_right_prediction_only(part3):
    part3.test_oom_killed_the_predicted_process(_record(22, [22], 1))
    part3.test_oom_killed_the_predicted_process(_record(22, [22, 37], 2))  # the race
    for learner, gone, kills in [(37, [22, 37], 2), (22, [22, 12], 2), (22, [22, 37, 12], 3), (37, [22], 1)]:
        with pytest.raises(CheckFailed):
            part3.test_oom_killed_the_predicted_process(_record(learner, gone, kills))


def test_log_agent_killed_in_the_race_is_judged_by_its_adj_before_the_oom(part3):
    record = _record(22, [22, 37], 2)
    for p in record["procs"]["before"]:
        p["oom_score_adj"] = 350 if p["comm"] == "log-agent" else 0
    part3.test_log_agent_adj({"log_agent": ""}, record)
    record["procs"]["before"][1]["oom_score_adj"] = 0  # the runbook's change was never made
    with pytest.raises(CheckFailed):
        part3.test_log_agent_adj({"log_agent": ""}, record)
    with pytest.raises(CheckFailed):  # not provoked, and no log-agent: still a failure
        part3.test_log_agent_adj({"log_agent": ""}, None)
