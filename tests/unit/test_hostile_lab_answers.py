"""Issue 15, part answers files (`/root/answers/PART.txt`): what the host side reads of them never crashes.

The checks' side is fuzzed in tests/fuzz/test_fuzz_lab_answers.py; these are the regressions it
and the audit found, as plain unit tests.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from labcoat.runner.observing import answered_pid

CHECKS = Path(__file__).resolve().parents[2] / "checks" / "lab_5_3"


@pytest.mark.parametrize(("text", "pid"), [
    ("victim_pid: 42\n", 42),
    ("victim_pid: \u00b2\n", None),  # str.isdigit() says yes, int() raised ValueError inside `lab provoke part3`
    ("victim_pid: \u0663\u0664\n", None),  # Arabic-Indic digits: not a PID a learner reads from ps
    ("victim_pid: " + "9" * 5000 + "\n", None),  # int() refuses more than 4300 digits
    ("victim_pid: -1\n", None),
    ("victim_pid:\n", None),
    ("", None),
    ("\x00\x1b[2J", None),
])
def test_the_prediction_step_reads_a_hostile_pid_as_none(text: str, pid: int | None) -> None:
    assert answered_pid(text, "victim_pid") == pid


def test_an_answers_file_cannot_forge_the_live_sections(monkeypatch) -> None:
    """The answers file is the snapshot's first section: a separator written into it must stay in it."""
    monkeypatch.syspath_prepend(str(CHECKS))
    sys.modules.pop("lab53", None)
    import lab53

    class Host:
        def run(self, command):
            marker = command.split()[1].rstrip(";")
            forged = "@@labcoat-section@@\n67108864\n@@labcoat-section@@\n67108864\n"
            return type("R", (), {"stdout": f"{marker}\n{forged}\n{marker}\n1\n{marker}\n2\n"})()

    live = lab53.snapshot(Host(), "echo @@; cat answers\necho @@; size\necho @@; resident", ["answers", "size",
                                                                                             "resident"])
    assert live["size"] == "1" and live["resident"] == "2" and "67108864" in live["answers"]


@pytest.mark.parametrize("line", ["some avg10=1.2.3 avg60=0 avg300=0 total=5",
                                  "some avg10=1.50 avg60=0.50 avg300=0.10 total=" + "1" * 5000,
                                  "some avg10=\u0661.50 avg60=0.50 avg300=0.10 total=5"])
def test_part4_refuses_a_psi_line_it_cannot_convert(monkeypatch, line: str) -> None:
    monkeypatch.syspath_prepend(str(CHECKS))
    sys.modules.pop("test_part4", None)
    import test_part4

    assert test_part4.PSI.match(line) is None
    assert test_part4.PSI.match("some avg10=1.50 avg60=0.50 avg300=0.10 total=1250000")
