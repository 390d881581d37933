"""Part 4's check recognises a PSI line the kernel printed, also when the runner samples late.

Regression (issue 10): under qemu TCG `lab selftest 5.3` once failed part 4's first solution pass
on `test_full_line_was_read_with_it`. Two causes, both reproduced by scripts/psi-repro.py: the
reference solution read /proc/pressure/memory twice (`some`, then `answer`, then `full`), so on a
slow machine its `full` line came from a later 2 s recomputation than its `some` line; and when the
runner's 250 ms sampling falls seconds behind, the kernel can recompute the averages more than once
between two samples, so a correctly copied line shows an avg10 no sample saw.

A small model of kernel/sched/psi.c (lazy recomputation every 2 s on a fixed grid, by the first
read or the periodic work after each mark; avg10 = avg10*e + pct*(1-e), e = 1677/2048; missed
periods decay; totals exact at every read) drives the check's own functions: every line one read
printed passes, also between samples seconds apart; the solution's old two-read pattern and
made-up lines fail where the samples are dense. No Docker.
"""

from __future__ import annotations

import importlib
import math
import random
import sys
from pathlib import Path

import pytest

CHECKS = Path(__file__).resolve().parents[2] / "checks" / "lab_5_3"
E = 1677 / 2048
PERIOD = 2.0


@pytest.fixture
def part4(monkeypatch):
    monkeypatch.syspath_prepend(str(CHECKS))
    sys.modules.pop("test_part4", None)
    yield importlib.import_module("test_part4")
    sys.modules.pop("test_part4", None)


class Kernel:
    """The system PSI group of kernel/sched/psi.c for `some` and `full`, in seconds and µs."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.now = 0.0
        self.total = {"some": 0.0, "full": 0.0}  # µs
        self.avg_total = {"some": 0.0, "full": 0.0}
        self.avg = {"some": 0.0, "full": 0.0}
        self.next_update, self.last_update = PERIOD, 0.0
        self.some_rate = self.full_rate = 0.0

    def advance(self, to: float) -> None:
        while self.now < to:
            step = min(0.1, to - self.now)
            if self.rng.random() < 0.2:  # pressure changes now and then
                self.some_rate = self.rng.choice([0.0, self.rng.random()])
                self.full_rate = self.some_rate * self.rng.random()
            self.total["some"] += step * 1e6 * self.some_rate
            self.total["full"] += step * 1e6 * self.full_rate
            self.now += step

    def touch(self, t: float) -> None:
        """A read (psi_show) or the periodic work: recompute when a 2 s mark has passed."""
        self.advance(t)
        if t < self.next_update:
            return
        missed = int((t - self.next_update) // PERIOD)
        period = t - (self.last_update + missed * PERIOD)
        self.next_update += (1 + missed) * PERIOD
        self.last_update = t
        for kind in ("some", "full"):
            sample = min(self.total[kind] - self.avg_total[kind], period * 1e6)
            self.avg_total[kind] += sample
            pct = 100 * sample / (period * 1e6)
            self.avg[kind] = self.avg[kind] * E ** missed * E + pct * (1 - E)

    def read(self, t: float) -> dict[str, tuple[float, int]]:
        """What `cat /proc/pressure/memory` prints at `t`: kind -> (avg10, total)."""
        self.touch(t)
        return {k: (math.floor(self.avg[k] * 100) / 100, int(self.total[k])) for k in ("some", "full")}


def simulate(seed: int, max_lag: float, reads: list[float], work_delay: float = 0.3):
    """A 25 s pressure run: the runner's samples (each `t` stamped up to 0.3 s after its read,
    each taken 0.25 s + up to `max_lag` s after the last, and one when the run ends) and what a
    learner's reads at `reads` printed."""
    rng = random.Random(seed)
    kernel = Kernel(rng)
    events = [(t, "learner") for t in reads]
    events += [(PERIOD * k + rng.uniform(0, work_delay), "work") for k in range(1, 14)]
    t, sample_times = 0.05, []
    while t < 25:
        sample_times.append(t)
        t += 0.25 + rng.uniform(0, max_lag)
    sample_times.append(25.0)  # the scenario's `expect` step takes a fresh sample when the run ends
    events += [(s, "runner") for s in sample_times]
    samples, printed = [], []
    for at, who in sorted(events):
        if who == "work":
            kernel.touch(at)
            continue
        line = kernel.read(at)
        if who == "learner":
            printed.append(line)
            continue
        samples.append({"t": at + rng.uniform(0, 0.3),
                        **{f"host_psi_{k}_avg10": line[k][0] for k in line},
                        **{f"host_psi_{k}_total": line[k][1] for k in line}})
    return samples, printed


@pytest.mark.parametrize("max_lag", [0.0, 0.5, 1.5, 3.0, 6.0])
def test_every_line_one_read_printed_is_recognised(part4, max_lag):
    """Whatever the runner's lateness, a line copied from one read passes both checks."""
    for seed in range(150):
        reads = [random.Random(seed).uniform(3, 22)]
        samples, [line] = simulate(seed, max_lag, reads)
        assert part4._printed_between(samples, line["some"]), (seed, line)
        assert part4._printed_between(samples, line["some"], line["full"]), (seed, line)


def test_the_old_two_read_solution_is_caught_when_sampling_is_dense(part4):
    """`some` from one read, `full` from a read 1.5 s later (after `answer`): a recomputation
    usually falls between them, and the check must then say so; never a false alarm otherwise."""
    caught = straddled = 0
    for seed in range(200):
        t = random.Random(seed).uniform(4, 20)
        samples, (first, second) = simulate(seed, 0.0, [t, t + 1.5])
        if second["full"][0] != first["full"][0] or second["some"][0] != first["some"][0]:
            straddled += 1
            caught += not part4._printed_between(samples, first["some"], second["full"])
        assert part4._printed_between(samples, first["some"], first["full"])
    assert straddled > 50
    assert caught / straddled > 0.8


@pytest.mark.parametrize(("max_lag", "at_least"), [(0.0, 0.95), (3.0, 0.6)])
def test_a_made_up_avg10_with_a_real_total_is_rejected(part4, max_lag, at_least):
    """The avg10 still has to fit: wide sample pairs accept only what the averaging can reach."""
    rejected = tried = 0
    for seed in range(200):
        rng = random.Random(seed)
        samples, [line] = simulate(seed, max_lag, [rng.uniform(3, 22)])
        avg10, total = line["some"]
        fake = round(rng.uniform(0, 100), 2)
        if abs(fake - avg10) < 1:
            continue
        tried += 1
        rejected += not part4._printed_between(samples, (fake, total))
    assert tried > 150
    assert rejected / tried >= at_least


def test_reachable_follows_the_kernels_averaging(part4):
    # Close samples: exactly what one of them showed (two decimals).
    assert part4._reachable(12.34, 12.34, 15.0, 0.4)
    assert part4._reachable(15.0, 12.34, 15.0, 1.4)
    assert not part4._reachable(13.5, 12.34, 15.0, 1.4)
    # 2.3 s apart: at most 2 recomputations (e^2 = 0.6705): from 10 forward [6.70, 39.65], to 20
    # backward [-19.3, 29.83].
    assert part4._reachable(15.0, 10.0, 20.0, 2.3)
    assert part4._reachable(29.8, 10.0, 20.0, 2.3)
    assert not part4._reachable(31.0, 10.0, 20.0, 2.3)
    assert not part4._reachable(6.0, 10.0, 20.0, 2.3)
    # No pressure at all on both sides: one recomputation can only keep it at 0.
    assert not part4._reachable(5.0, 0.0, 0.0, 2.5)


def test_a_full_total_from_another_moment_is_rejected(part4):
    a = {"t": 1.0, "host_psi_some_avg10": 5.0, "host_psi_some_total": 1_000_000,
         "host_psi_full_avg10": 2.0, "host_psi_full_total": 400_000}
    b = {"t": 1.25, "host_psi_some_avg10": 5.0, "host_psi_some_total": 1_100_000,
         "host_psi_full_avg10": 2.0, "host_psi_full_total": 450_000}
    assert part4._printed_between([a, b], (5.0, 1_050_000), (2.0, 420_000))
    assert not part4._printed_between([a, b], (5.0, 1_050_000), (2.0, 900_000))
    assert not part4._printed_between([a, b], (5.0, 1_050_000), (3.0, 420_000))
