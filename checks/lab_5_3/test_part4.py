"""Part 4: PSI. Your recorded line must be one the kernel really printed during the pressure run."""

from __future__ import annotations

import re

import pytest
from lab53 import ANSWERS_HINT, answers_of, snapshot

from labcoat.testing import expect

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


@pytest.mark.parametrize("kind", ["some", "full"])
def test_psi_line_format(answers, kind):
    """You recorded the `some` and `full` lines of /proc/pressure/memory as the kernel prints them."""
    match, text = _line(answers, f"psi_{kind}")
    expect(bool(match) and match.group(1) == kind,
           expected=f"{kind} avg10=N.NN avg60=N.NN avg300=N.NN total=N",
           found=text or f"nothing ({ANSWERS_HINT})", hint="copy the line exactly; quote it when you record it")


def test_psi_line_was_read_during_the_run(answers, record):
    """Your `some` line was read while the pressure run went on (its total falls inside the run)."""
    if not record:
        expect(False, expected="a pressure run (`lab provoke part4`)", found="none yet",
               hint="start `lab provoke part4` on the host, then read the file in `lab shell part4` while it runs")
    match, text = _line(answers, "psi_some")
    samples = [s for s in record["samples"] if s.get("host_psi_some_total") is not None]
    if not match or not samples:
        expect(False, expected="a PSI some line and a run with host PSI samples",
               found=text or "no line", hint=ANSWERS_HINT)
    total, avg10 = int(match.group(5)), float(match.group(2))
    first, last = samples[0]["host_psi_some_total"], samples[-1]["host_psi_some_total"]
    expect(first <= total <= last,
           expected=f"total between {first:.0f} and {last:.0f} (the kernel's counter during the run)",
           found=f"total={total}",
           hint="read /proc/pressure/memory inside the part 4 sandbox while `lab provoke part4` runs")
    # The runner sampled every 250 ms. A line the kernel printed lies between two consecutive
    # samples: its total in between, and its avg10 (recomputed every 2 s) equal to one of theirs.
    # A typed or remembered line practically never fits both.
    eps = 50_000  # µs of slack for the moment of reading vs sampling
    fits = any(
        a["host_psi_some_total"] - eps <= total <= b["host_psi_some_total"] + eps
        and any(abs(avg10 - s["host_psi_some_avg10"]) < 0.005 for s in (a, b))
        for a, b in zip(samples, samples[1:], strict=False)
    )
    expect(fits, expected="a line the kernel printed at that moment (total and avg10 as sampled)",
           found=text, hint="copy the line exactly as `cat /proc/pressure/memory` prints it")
