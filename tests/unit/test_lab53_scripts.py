"""Lab 5.3's shell scripts (reference solutions, decoys) on both cgroup layouts, without Docker.

Regression: part 3's reference solution passed on cgroup v1 but failed its second run on cgroup v2
(the v2-cgroupfs VM lane, `lab selftest 5.3`, "solution again"). It gave one awk both the v1 file
(memory/memory.oom_control) and the v2 file (memory.events); mawk, Debian's and the sandbox's awk,
stops at the first missing input file, so on v2 the OOM-kill count was always empty, the script
predicted again among the survivors of the OOM, and the prediction on file changed. Part 2 had
the same bug with memory.stat (docs/platforms.md).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

LABS = Path(__file__).resolve().parents[2] / "labs"
SCRIPTS = sorted(LABS.rglob("*.sh"))
V1, V2 = "/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory.events"


def _commands(text: str) -> list[str]:
    """The script's lines, continuation lines joined."""
    return text.replace("\\\n", " ").splitlines()


def test_there_are_scripts_to_scan():
    assert len(SCRIPTS) >= 12 and any(p.name == "part3.sh" for p in SCRIPTS)


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: str(p.relative_to(LABS)))
def test_no_awk_is_given_both_cgroup_layouts(path):
    """One awk never reads a v1 and a v2 cgroup file: mawk gives up at the missing one."""
    for line in _commands(path.read_text()):
        for operands in _awk_operands(line):
            v1 = re.findall(r"/sys/fs/cgroup/memory/\S+", operands)
            v2 = re.findall(r"/sys/fs/cgroup/memory\.\S+", operands)
            assert not (v1 and v2), f"{path.name}: awk is given both {v1[0]} and {v2[0]}: {line.strip()}"


def _awk_operands(line: str) -> list[str]:
    """What each awk on this line is given, up to the end of its command (single-quoted text left out)."""
    bare = re.sub(r"'[^']*'", "''", line)
    return [m.group(1) for m in re.finditer(r"\bawk\b([^|;)&]*)", bare)]


def test_the_scan_would_catch_the_old_part3_line():
    old = ("kills=$(awk '$1 == \"oom_kill\" {print $2; exit}' /sys/fs/cgroup/memory/memory.oom_control "
           "/sys/fs/cgroup/memory.events 2>/dev/null || true)")
    (operands,) = _awk_operands(old)
    assert re.findall(r"/sys/fs/cgroup/memory/\S+", operands) and re.findall(r"/sys/fs/cgroup/memory\.\S+", operands)
    # A pipe into awk is not awk's operand (part 5 reads the file that exists with cat, then awk).
    piped = _awk_operands("sh -c 'cat /sys/fs/cgroup/memory/memory.oom_control || cat /sys/fs/cgroup/memory.events'"
                          " | awk '{print}'")
    assert len(piped) == 1 and "/sys/" not in piped[0]


def _part3_guard(tmp_path: Path, v1_text: str | None, v2_text: str | None) -> subprocess.CompletedProcess:
    """Part 3's solution up to its "the OOM already happened" guard, its cgroup files moved under tmp_path."""
    text = (LABS / "5.3" / "solutions" / "part3.sh").read_text()
    head = text[: text.index("\nfi\n") + 4]
    assert V1 in head and V2 in head and "/root/answers/part3.txt" in head
    files = {V1: tmp_path / "v1" / "memory.oom_control", V2: tmp_path / "v2" / "memory.events"}
    for where, content in ((V1, v1_text), (V2, v2_text)):
        if content is not None:
            files[where].parent.mkdir(parents=True, exist_ok=True)
            files[where].write_text(content)
        head = head.replace(where, str(files[where]))
    answers = tmp_path / "answers.txt"
    answers.write_text("victim_pid: 4242\n")
    head = head.replace("/root/answers/part3.txt", str(answers))
    return subprocess.run(["sh", "-c", head + "\necho predicting again\n"], capture_output=True, text=True,
                          timeout=30, check=False)


V1_KILLED = "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n"
V2_KILLED = "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n"


@pytest.mark.skipif(shutil.which("awk") is None, reason="no awk on this host")
@pytest.mark.parametrize(("layout", "v1", "v2"), [("v1", V1_KILLED, None), ("v2", None, V2_KILLED)])
def test_part3_solution_keeps_its_prediction_after_the_oom(tmp_path, layout, v1, v2):
    """On either layout, a second run after the OOM keeps the prediction on file instead of predicting again."""
    ran = _part3_guard(tmp_path, v1, v2)
    assert ran.returncode == 0, ran.stderr
    assert "keeping the prediction on file" in ran.stdout and "predicting again" not in ran.stdout, (layout, ran)


@pytest.mark.skipif(shutil.which("awk") is None, reason="no awk on this host")
@pytest.mark.parametrize(("v1", "v2"), [(V1_KILLED.replace("oom_kill 1", "oom_kill 0"), None),
                                        (None, V2_KILLED.replace("oom_kill 1", "oom_kill 0")), (None, None)])
def test_part3_solution_predicts_before_the_oom(tmp_path, v1, v2):
    """Before any OOM kill (or with no readable counter) the solution goes on to predict."""
    ran = _part3_guard(tmp_path, v1, v2)
    assert ran.returncode == 0, ran.stderr
    assert "predicting again" in ran.stdout and "keeping" not in ran.stdout
