"""Part 4: PSI. Your recorded line must be one the kernel really printed during the pressure run.

How a printed line is recognised (kernel/sched/psi.c, psi_show): one read of
/proc/pressure/memory prints `some` and `full` together, their `total=` counters as of that
moment (monotonic, in µs) and their averages as of the last recomputation, which happens every
2 s (PSI_FREQ), on the first read or the periodic work after each 2 s mark. The runner reads the
same file every 250 ms. A line read between two samples A and B (its `total=` between theirs)
therefore shows A's or B's averages whenever A and B are less than 2 s apart: a recomputation
after A and before the read is seen by B too, and a second one cannot fit (the first read after
a 2 s mark recomputes, so the next mark lies more than 2 s after A's read). The code takes
1.5 s (EXACT_GAP_S), leaving 0.5 s for the time between a sample's read and its timestamp.

Known flakiness, fixed (issue 10): under qemu TCG (30-40x slower) the runner's sampling thread
can fall seconds behind, and then the kernel may have recomputed the averages more than once
between two samples: the line shows a value no sample saw. For such a wide pair the check does
not guess: avg10 moves by one recomputation from v to v*e + p*(1-e) (e = EXP_10s/FIXED_1 =
1677/2048, p the stall percentage of the last period, 0..100), so the value must be reachable
from A's in at most n steps and must reach B's in at most n, n the 2 s marks the gap can hold.
The other failure, a reference solution that read the file twice (`grep '^some'`, then after
`answer`, `grep '^full'`) and so recorded a `full` line of a later recomputation, was the
solution's bug: it now reads the file once, as the lab text asks.
"""

from __future__ import annotations

import re

import pytest
from lab53 import ANSWERS_HINT, answers_of, snapshot

from labcoat.testing import expect, plausible

# ASCII digits, bounded: a learner's "avg10=1.2.3" or a 5000-digit total must fail the check, not crash it.
_AVG = r"(\d{1,3}(?:\.\d{1,6})?)"
PSI = re.compile(rf"^(some|full)\s+avg10={_AVG}\s+avg60={_AVG}\s+avg300={_AVG}\s+total=(\d{{1,20}})$", re.ASCII)


@pytest.fixture(scope="module")
def live(host):
    return snapshot(host, "echo @@; cat /root/answers/part4.txt 2>/dev/null", ["answers"])


answers = answers_of("part4")


@pytest.fixture(scope="module")
def record(sandbox):
    return sandbox.run_record("lab53-part4-pressure")


def _line(answers, key):
    text = answers.get(key, "").strip().strip('"')
    return PSI.match(text), text


def _require_line(answers, kind):
    match, text = _line(answers, f"psi_{kind}")
    expect(bool(match) and match.group(1) == kind,
           expected=f"{kind} avg10=N.NN avg60=N.NN avg300=N.NN total=N (copied from /proc/pressure/memory)",
           found=text or f"nothing ({ANSWERS_HINT})", hint="copy the line exactly; quote it when you record it")
    return match


def _require_samples(record):
    if not record:
        expect(False, expected="a pressure run (`lab provoke part4`)", found="none yet",
               hint="start `lab provoke part4` on the host, then read the file in `lab shell part4` while it runs")
    samples = [s for s in record["samples"] if s.get("host_psi_some_total") is not None]
    if not samples:
        pytest.skip("the pressure run could not observe PSI on this host")
    return samples


PSI_PERIOD_S = 2.0  # PSI_FREQ: the averages are recomputed every 2 s
EXACT_GAP_S = 1.5  # two samples closer than this saw every recomputation between them (0.5 s for timestamp lag)
DECAY = 1677 / 2048  # EXP_10s / FIXED_1: avg10 keeps this share of itself at each recomputation
PRINTED = 0.01  # avg10 is printed with two decimals (LOAD_INT.LOAD_FRAC, truncated)
EPS = 50_000  # µs of `total=` slack around the samples for the read


def _brackets(samples, total, eps=EPS):
    """Consecutive sample pairs whose `some` totals enclose `total` (µs of slack for the read)."""
    return [(a, b) for a, b in zip(samples, samples[1:], strict=False)
            if a["host_psi_some_total"] - eps <= total <= b["host_psi_some_total"] + eps]


def _reachable(value, first, last, gap):
    """Could a read between two samples showing avg10 `first` and `last`, `gap` s apart, print `value`?

    Less than EXACT_GAP_S apart: only `first` or `last` (at most one recomputation between them).
    Wider: at most n = gap // 2 + 1 recomputations; each maps v to v*DECAY + p*(1 - DECAY) with
    p in 0..100 (missed periods only decay), so `value` lies within n steps of `first` forward and
    of `last` backward.
    """
    if abs(value - first) < PRINTED / 2 or abs(value - last) < PRINTED / 2:
        return True
    if gap < EXACT_GAP_S:
        return False
    keep = DECAY ** (int(gap // PSI_PERIOD_S) + 1)
    low = max(first * keep, 100 - (100 - last) / keep)
    high = min(100 - (100 - first) * keep, last / keep)
    return low - PRINTED <= value <= high + PRINTED


def _avg10(sample, kind):
    return sample.get(f"host_psi_{kind}_avg10") or 0.0


def _total_between(a, b, total, kind):
    first, last = a.get(f"host_psi_{kind}_total"), b.get(f"host_psi_{kind}_total")
    return first is None or last is None or first - EPS <= total <= last + EPS


def _printed_between(samples, some, full=None):
    """Were `some` (and `full`), each (avg10, total), printed by one read between two samples?

    Both lines of one read come from the same recomputation: where two samples are close
    enough to be exact, one of them must show both averages.
    """
    lines = {"some": some, **({"full": full} if full is not None else {})}
    for a, b in _brackets(samples, some[1]):
        if not all(_total_between(a, b, total, kind) for kind, (_, total) in lines.items()):
            continue
        gap = b["t"] - a["t"]
        if gap < EXACT_GAP_S:
            if any(all(abs(avg10 - _avg10(s, kind)) < PRINTED / 2 for kind, (avg10, _) in lines.items())
                   for s in (a, b)):
                return True
        elif all(_reachable(avg10, _avg10(a, kind), _avg10(b, kind), gap) for kind, (avg10, _) in lines.items()):
            return True
    return False


def _before_run(record):
    """A `some` line as read just before the pressure run: its total below the run's first sample."""
    samples = [s for s in (record or {}).get("samples", []) if s.get("host_psi_some_total") is not None]
    if not samples:
        return None
    return f"some avg10=0.00 avg60=0.00 avg300=0.00 total={max(int(samples[0]['host_psi_some_total']) - 1000, 0)}"


def test_some_line_was_read_during_the_run(answers, record):
    """Your `some` line is one the kernel printed while the pressure run went on."""
    some, full = _line(answers, "psi_some")[1], _line(answers, "psi_full")[1]
    plausible("psi_some", some, {"the full line (some and full swapped)": full,
                                 "a line read before the pressure run": _before_run(record)})
    plausible("psi_full", full, {"the some line (some and full swapped)": some})
    match = _require_line(answers, "some")
    samples = _require_samples(record)
    total, avg10 = int(match.group(5)), float(match.group(2))
    first, last = samples[0]["host_psi_some_total"], samples[-1]["host_psi_some_total"]
    when = "before the run started" if total < first else "after the run ended" if total > last else ""
    expect(first <= total <= last,
           expected="a total= counter the kernel showed during the pressure run",
           found=f"total={total}: " + (f"a reading from {when}" if when else "not a reading"),
           hint="read /proc/pressure/memory inside the part 4 sandbox while `lab provoke part4` runs",
           truth=f"total between {first:.0f} and {last:.0f}")
    # The runner sampled every 250 ms. A line the kernel printed lies between two consecutive
    # samples: its total in between, and its avg10 (recomputed every 2 s) one of theirs, or, where
    # the runner fell behind, one the kernel's averaging could reach in between (module docstring).
    # A typed or remembered line practically never fits both.
    fits = _printed_between(samples, (avg10, total))
    expect(fits, expected="a line the kernel printed at that moment (total and avg10 as sampled)",
           found=f"some avg10={avg10:g} total={total}",
           hint="copy the line exactly as `cat /proc/pressure/memory` prints it")


def test_full_line_was_read_with_it(answers, record):
    """Your `full` line was printed together with your `some` line."""
    some = _require_line(answers, "some")
    full = _require_line(answers, "full")
    samples = _require_samples(record)
    avg10, total = float(full.group(2)), int(full.group(5))
    some_line = (float(some.group(2)), int(some.group(5)))
    seen = sorted({s["host_psi_full_avg10"] for a, b in _brackets(samples, some_line[1]) for s in (a, b)
                   if s.get("host_psi_full_avg10") is not None})
    # `full` never exceeds `some` (all tasks stalled implies some task stalled), and one read prints
    # both lines from the same recomputation: the pair of averages and the pair of totals must be
    # what one read printed between two samples.
    expect(total <= some_line[1] and _printed_between(samples, some_line, (avg10, total)),
           expected="a full line printed by the same read as your some line (full total <= some total)",
           found=f"full avg10={avg10:g} total={total}" + (": full total above the some total"
                                                          if total > some_line[1] else ""),
           hint="record both lines from the same `cat`", truth=f"full avg10 in {seen}")
