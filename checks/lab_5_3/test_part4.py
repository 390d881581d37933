"""Part 4: PSI. Your recorded line must be one the kernel really printed during the pressure run."""

from __future__ import annotations

import re

import pytest
from lab53 import ANSWERS_HINT, answers_of, snapshot

from labcoat.testing import expect, plausible

PSI = re.compile(r"^(some|full)\s+avg10=([\d.]+)\s+avg60=([\d.]+)\s+avg300=([\d.]+)\s+total=(\d+)$")


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


def _brackets(samples, total, eps=50_000):
    """Consecutive sample pairs whose `some` totals enclose `total` (µs of slack for the read)."""
    return [(a, b) for a, b in zip(samples, samples[1:], strict=False)
            if a["host_psi_some_total"] - eps <= total <= b["host_psi_some_total"] + eps]


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
    # samples: its total in between, and its avg10 (recomputed every 2 s) equal to one of theirs.
    # A typed or remembered line practically never fits both.
    fits = any(abs(avg10 - s["host_psi_some_avg10"]) < 0.005 for pair in _brackets(samples, total) for s in pair)
    expect(fits, expected="a line the kernel printed at that moment (total and avg10 as sampled)",
           found=f"some avg10={avg10:g} total={total}",
           hint="copy the line exactly as `cat /proc/pressure/memory` prints it")


def test_full_line_was_read_with_it(answers, record):
    """Your `full` line was printed together with your `some` line."""
    some = _require_line(answers, "some")
    full = _require_line(answers, "full")
    samples = _require_samples(record)
    pairs = _brackets(samples, int(some.group(5)))
    avg10, total = float(full.group(2)), int(full.group(5))
    seen = sorted({s["host_psi_full_avg10"] for pair in pairs for s in pair if s.get("host_psi_full_avg10") is not None})
    # `full` never exceeds `some` (all tasks stalled implies some task stalled), and both lines
    # come from the same read, so its avg10 is the one sampled at that moment.
    expect(total <= int(some.group(5)) and any(abs(avg10 - v) < 0.005 for v in seen),
           expected="a full line printed by the same read as your some line (full total <= some total)",
           found=f"full avg10={avg10:g} total={total}" + (": full total above the some total"
                                                          if total > int(some.group(5)) else ""),
           hint="record both lines from the same `cat`", truth=f"full avg10 in {seen}")
