"""How `lab selftest` judges a generated decoy whose figure drifts between recording and replay (no Docker).

The fake run_checks stands for a part-1-like check: it judges the replayed answer against a truth
that moves with every run, and records the family of mistakes as they are at that check time.
"""

from __future__ import annotations

from typing import Any

from labcoat.grading.selftest import MutationFamily, replay_mutation
from labcoat.testing import collecting_mutations, judge_number

TOLERANCE = 1024 * 1024
NAME = "MemFree + Cached (a hand-made estimate), not the kernel's MemAvailable"


def fake_run_checks(states: list[dict[str, int]]):
    """A replay against successive host states: each call judges `value` with the next state's figures."""
    calls: list[str] = []

    def replay(value: str) -> tuple[str, str, list[dict[str, Any]]]:
        state = states[min(len(calls), len(states) - 1)]
        calls.append(value)
        with collecting_mutations() as fresh:
            try:
                judge_number(value, state["MemAvailable"], key="mem_available_kb", unit="kB", what="MemAvailable",
                             tolerance=TOLERANCE, mistakes={NAME: state["MemFree"] + state["Cached"],
                                                            "MemTotal, not MemAvailable": state["MemTotal"]})
                got, why = "pass", ""
            except AssertionError:
                got, why = "fail", "test_mem_available: failed"
        return got, why, fresh

    replay.calls = calls  # type: ignore[attr-defined]
    return replay


def solution_time_figure(state: dict[str, int]) -> str:
    return str(state["MemFree"] + state["Cached"])


AT_SOLUTION = {"MemTotal": 24_000_000, "MemAvailable": 20_000_000, "MemFree": 15_000_000,
               "Cached": 6_100_000}  # MemFree + Cached lies 1.05 tolerances above MemAvailable


def test_a_drifted_figure_is_replayed_as_it_stands_and_rejected():
    # By the replay MemAvailable rose 200 MB (the stale figure is now inside the tolerance) and so did
    # MemFree: the mistake as it stands at check time is still 1.05 tolerances away, and is rejected.
    later = {**AT_SOLUTION, "MemAvailable": 20_200_000, "MemFree": 15_200_000}
    replay = fake_run_checks([later])
    mutation = replay_mutation("mem_available_kb", NAME, solution_time_figure(AT_SOLUTION), replay)
    assert mutation.got == "fail"
    assert mutation.value == solution_time_figure(later)
    assert replay.calls == [solution_time_figure(AT_SOLUTION), solution_time_figure(later)]
    assert "drifted from 21100000 to 21300000" in mutation.detail
    family = MutationFamily("part1", "test_mem_available", "mem_available_kb", tried=[mutation])
    assert family.ok and family.rejected == 1


def test_a_mistake_the_check_now_accepts_is_indistinct_not_a_failure():
    # MemAvailable rose (the stale figure is accepted) and Cached shrank: MemFree + Cached is now within the
    # tolerance of MemAvailable, right by the check's own rule, so it is no mistake in this sandbox now.
    later = {**AT_SOLUTION, "MemAvailable": 20_200_000, "Cached": 5_500_000}
    replay = fake_run_checks([later])
    mutation = replay_mutation("mem_available_kb", NAME, solution_time_figure(AT_SOLUTION), replay)
    assert mutation.got == "skipped" and "indistinct" in mutation.detail
    assert replay.calls == [solution_time_figure(AT_SOLUTION)]
    assert MutationFamily("part1", "c", "k", tried=[mutation]).ok


def test_a_stable_figure_the_check_accepts_is_a_real_failure():
    # A check that accepts a mistake lying 1.05 tolerances away as it stands: the selftest must say so.
    def lax(value: str) -> tuple[str, str, list[dict[str, Any]]]:
        with collecting_mutations() as fresh:
            judge_number(str(AT_SOLUTION["MemAvailable"]), AT_SOLUTION["MemAvailable"], key="mem_available_kb",
                         what="MemAvailable", tolerance=TOLERANCE,
                         mistakes={NAME: AT_SOLUTION["MemFree"] + AT_SOLUTION["Cached"]})
        return "pass", "", fresh

    mutation = replay_mutation("mem_available_kb", NAME, solution_time_figure(AT_SOLUTION), lax)
    assert mutation.got == "pass"
    assert not MutationFamily("part1", "c", "k", tried=[mutation]).ok


def test_a_figure_rejected_the_first_time_is_replayed_once():
    replay = fake_run_checks([AT_SOLUTION])
    mutation = replay_mutation("mem_available_kb", NAME, solution_time_figure(AT_SOLUTION), replay)
    assert mutation.got == "fail" and mutation.value == solution_time_figure(AT_SOLUTION)
    assert len(replay.calls) == 1


def test_a_drifted_figure_accepted_again_is_a_failure():
    # The mistake's figure moved, and its current figure is accepted by a check that ignores it: a failure.
    moving = iter(["21100000", "21300000"])

    def lax(value: str) -> tuple[str, str, list[dict[str, Any]]]:
        return "pass", "", [{"key": "mem_available_kb", "values": {next(moving, "21300000"): NAME},
                             "indistinct": []}]

    mutation = replay_mutation("mem_available_kb", NAME, "21000000", lax)
    assert mutation.got == "pass" and "drifted" in mutation.detail
