"""labcoat.testing's feedback: named mistakes, unit slips and stale readings in words, never the truth."""

from __future__ import annotations

import doctest

import pytest

import labcoat.grading.selftest
import labcoat.testing
from labcoat.testing import CheckFailed, collecting_mutations, diagnose, judge_choice, judge_number

MEMINFO = {"MemTotal": 24684092, "MemFree": 18931164, "MemAvailable": 23551928, "Cached": 4120000}


@pytest.mark.parametrize("module", [labcoat.testing, labcoat.grading.selftest])
def test_doctests(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def available(value):
    return judge_number(value, MEMINFO["MemAvailable"], key="mem_available_kb", unit="kB", what="MemAvailable",
                        tolerance=384 * 1024, stale_within=4 * 384 * 1024,
                        mistakes={"MemFree, not MemAvailable": MEMINFO["MemFree"],
                                  "MemTotal, not MemAvailable": MEMINFO["MemTotal"]})


@pytest.mark.parametrize(("value", "words"), [
    (MEMINFO["MemTotal"], "this is MemTotal, not MemAvailable"),
    (MEMINFO["MemFree"], "this is MemFree, not MemAvailable"),
    (MEMINFO["MemAvailable"] * 1024, "1024 times too large"),
    (MEMINFO["MemAvailable"] // 1024, "1024 times too small"),
    (MEMINFO["MemAvailable"] * 1000, "1000 times too large"),
    (MEMINFO["MemAvailable"] - 900_000, "stale reading"),
    (42, "not a figure the sandbox shows"),
])
def test_wrong_figures_are_named_without_the_truth(value, words):
    with pytest.raises(CheckFailed) as caught:
        available(str(value))
    err = caught.value
    assert words in err.found
    text = f"{err.expected} {err.found} {err.hint}"
    for figure in MEMINFO.values():  # none of the live figures, except the learner's own
        assert str(figure) not in text.replace(str(value), "")
    assert err.truth == f"{MEMINFO['MemAvailable']} kB"  # for --reveal and lab grade


def test_memtotal_is_rejected_whatever_the_tolerance():
    """Nearer to a named mistake than to the truth fails even inside a huge tolerance (the old 10%-of-RAM rule)."""
    assert diagnose(MEMINFO["MemTotal"], MEMINFO["MemAvailable"], {"MemTotal": MEMINFO["MemTotal"]},
                    tolerance=MEMINFO["MemTotal"] // 10) == "this is MemTotal"


def test_right_and_drifted_figures_pass():
    assert available(str(MEMINFO["MemAvailable"])) == MEMINFO["MemAvailable"]
    assert available(f"{MEMINFO['MemAvailable'] - 300_000} kB") == MEMINFO["MemAvailable"] - 300_000


def test_families_are_recorded_only_while_collecting():
    available(str(MEMINFO["MemAvailable"]))  # not collecting: nothing kept, nothing raised
    with collecting_mutations() as found:
        available(str(MEMINFO["MemAvailable"]))
        with pytest.raises(CheckFailed):
            judge_choice("7", 42, key="largest_pid", what="the largest", mistakes={"the runner-up": 7, "same": 42})
    by_key = {f["key"]: f for f in found}
    values = by_key["mem_available_kb"]["values"]
    assert values[str(MEMINFO["MemTotal"])] == "MemTotal, not MemAvailable"
    assert str(MEMINFO["MemAvailable"] * 1024) in values and str(MEMINFO["MemAvailable"] * 1000) in values
    assert by_key["largest_pid"]["values"] == {"7": "the runner-up"}
    assert by_key["largest_pid"]["indistinct"] == ["same"]  # equal to the truth here: not a mistake to try


def test_a_mistake_near_the_truth_does_not_fail_a_right_reading_that_drifted() -> None:
    """Regression: MemFree + Cached lay within a few MiB of MemAvailable while grading; a right reading
    taken seconds earlier was then nearer to it than to the moved truth, and the reference submission
    lost part 1's MemAvailable check. A mistake that near counts only when copied exactly."""
    from labcoat.testing import diagnose

    truth, tolerance = 21_000_000, 1024 * 1024
    near = {"MemFree + Cached (a hand-made estimate)": truth + 20_000, "MemTotal": 24_684_084}
    reading = truth + 15_000  # right, a few seconds old: nearer to the estimate than to the truth now
    assert diagnose(reading, truth, near, tolerance=tolerance) is None
    assert diagnose(truth + 20_000, truth, near, tolerance=tolerance) == "this is MemFree + Cached (a hand-made estimate)"
    assert diagnose(24_684_084, truth, near, tolerance=tolerance) == "this is MemTotal"
    # selftest does not try it as a decoy: it cannot be told apart from the truth here
    assert diagnose(truth + 20_000, truth, near, tolerance=tolerance, exact_near=False) is None
    # the value equal to the truth is right even when a mistake is exactly the truth too
    assert diagnose(truth, truth, {"same": truth}, tolerance=tolerance) is None


# A 4 GiB Killercoda-like VM with about 700 MiB in use: MemTotal lies within part 1's 1 GiB tolerance.
SMALL_HOST = {"MemTotal": 4_014_500, "MemFree": 2_900_000, "MemAvailable": 3_297_280, "Cached": 500_000}


@pytest.fixture
def part1(monkeypatch):
    import importlib
    import sys
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "checks" / "lab_5_3"))
    sys.modules.pop("test_part1", None)
    yield importlib.import_module("test_part1")
    sys.modules.pop("test_part1", None)


@pytest.mark.parametrize("key", ["mem_available_kb", "mem_free_kb"])
def test_part1_rejects_memtotal_read_with_free_m_on_a_small_host(part1, key):
    """`free -m` x 1024 is up to 1024 kB off MemTotal: not copied exactly, yet MemTotal all the same."""
    check = part1.test_mem_available if key == "mem_available_kb" else part1.test_mem_free
    for memtotal_kb in (SMALL_HOST["MemTotal"], SMALL_HOST["MemTotal"] + 1023, SMALL_HOST["MemTotal"] - 1023):
        host = {**SMALL_HOST, "MemTotal": memtotal_kb}
        free_m = memtotal_kb // 1024 * 1024  # what `free -m` shows, times 1024
        for shown in (free_m, free_m + 1024):  # truncated or rounded up
            if abs(shown - memtotal_kb) > 1024:
                continue
            with pytest.raises(CheckFailed) as caught:
                check({key: str(shown)}, host)
            assert "MemTotal" in caught.value.found
            assert str(host["MemAvailable"]) not in str(caught.value.found)


def test_part1_keeps_its_tolerance_and_passes_right_readings_on_a_small_host(part1):
    assert part1.MEMAVAILABLE_DRIFT_KB == 1024 * 1024  # measured; the free -m fix must not shrink it
    truth = SMALL_HOST["MemAvailable"]
    for reading in (truth, truth // 1024 * 1024, truth - 300_000, truth + 600_000):  # free -m x 1024, drifted
        part1.test_mem_available({"mem_available_kb": str(reading)}, SMALL_HOST)


def test_copied_within_names_only_the_mistakes_it_widens():
    near = {"MemTotal": 4_014_500, "MemFree + Cached": 3_300_000}
    truth = 3_297_280
    # 900 kB from the estimate, nearer to it than to the truth: still a right reading (only MemTotal is widened)
    assert diagnose(3_299_100, truth, near, tolerance=1024 * 1024, copied_within={"MemTotal": 1024}) is None
    assert diagnose(4_014_500 - 900, truth, near, tolerance=1024 * 1024,
                    copied_within={"MemTotal": 1024}) == "this is MemTotal"
    # a figure nearer the truth than the mistake is never the mistake, whatever the window
    assert diagnose(truth + 100, truth, {"MemTotal": truth + 900}, tolerance=1024 * 1024,
                    copied_within=1024) is None
