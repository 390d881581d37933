"""Issue 15, submissions: `lab grade` reads a student's folder, which is untrusted.

Every file read from it must be a regular file inside the folder (a symlink is followed
only while it stays inside), bounded in size; anything else is a named reason in the
report (the student's problem), never a traceback, a hang, an infrastructure failure or
a file of the grader's host printed in the report. No Docker: a part whose script was
not read scores nothing without a sandbox.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from labcoat.grading.submission import MAX_SCRIPT_BYTES, QUIZ_FILE, Submission, has_work

ROOT = Path(__file__).resolve().parents[2]
BAIT = "root:x:0:0:the-grader-host-secret"


def read_within(folder: Path, lab, seconds: float = 10) -> Submission:
    """Submission.read in a thread that must end within `seconds` (a FIFO opened for reading blocks forever)."""
    out: list[Submission | BaseException] = []

    def work() -> None:
        try:
            out.append(Submission.read(folder, lab))
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out.append(exc)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(seconds)
    assert out, f"Submission.read still running after {seconds} s: it blocked"
    if isinstance(out[0], BaseException):
        raise out[0]
    return out[0]


@pytest.fixture
def lab(catalog):
    return catalog.lab("5.3")


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "outside" / "passwd"
    path.parent.mkdir()
    path.write_text(BAIT + "\n")
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "student"
    path.mkdir()
    return path


def test_a_symlink_to_etc_passwd_is_not_read(folder, lab) -> None:
    (folder / "part1.sh").symlink_to("/etc/passwd")
    sub = read_within(folder, lab)
    assert sub.scripts["part1"] is None
    assert sub.problems["part1"] == "part1.sh is a symlink out of the submission: not read"


def test_a_symlink_out_through_dot_dot_is_not_read(folder, lab, secret) -> None:
    (folder / "part1.sh").symlink_to(Path("..") / "outside" / "passwd")
    sub = read_within(folder, lab)
    assert sub.scripts["part1"] is None and "symlink out of the submission" in sub.problems["part1"]


def test_a_symlink_to_dev_zero_is_not_read(folder, lab) -> None:
    (folder / "part2.sh").symlink_to("/dev/zero")
    sub = read_within(folder, lab)
    assert sub.scripts["part2"] is None and "symlink out of the submission" in sub.problems["part2"]


@pytest.mark.parametrize("links", [{"part1.sh": "part1.sh"}, {"part1.sh": "other.sh", "other.sh": "part1.sh"}])
def test_a_symlink_loop_is_a_named_reason(folder, lab, links: dict[str, str]) -> None:
    for name, target in links.items():
        (folder / name).symlink_to(target)
    sub = read_within(folder, lab)
    assert sub.scripts["part1"] is None and sub.problems["part1"] == "part1.sh is a symlink loop: not read"


def test_a_fifo_does_not_block(folder, lab) -> None:
    os.mkfifo(folder / "part1.sh")
    os.mkfifo(folder / QUIZ_FILE)
    sub = read_within(folder, lab)
    assert sub.scripts["part1"] is None and "named pipe (FIFO)" in sub.problems["part1"]
    assert sub.quiz_file is None and "named pipe (FIFO)" in (sub.quiz_problem or "")


def test_a_symlink_inside_to_a_fifo_does_not_block(folder, lab) -> None:
    os.mkfifo(folder / "pipe")
    (folder / "part1.sh").symlink_to("pipe")
    sub = read_within(folder, lab)
    assert sub.scripts["part1"] is None and "named pipe (FIFO)" in sub.problems["part1"]


def test_an_oversized_script_is_not_read(folder, lab) -> None:
    (folder / "part1.sh").write_bytes(b"echo hi\n" * (MAX_SCRIPT_BYTES // 8 + 1))
    sub = read_within(folder, lab)
    assert sub.scripts["part1"] is None and "too large" in sub.problems["part1"]
    assert str(MAX_SCRIPT_BYTES) in sub.problems["part1"]


def test_a_folder_named_like_a_script_is_a_named_reason(folder, lab) -> None:
    (folder / "part1.sh").mkdir()
    (folder / QUIZ_FILE).mkdir()
    sub = read_within(folder, lab)
    assert sub.scripts["part1"] is None and sub.problems["part1"] == "part1.sh is a folder, not a regular file: not read"
    assert sub.quiz_file is None and "folder" in (sub.quiz_problem or "")


def test_a_dangling_symlink_inside_is_a_named_reason(folder, lab) -> None:
    (folder / "part1.sh").symlink_to("nowhere.sh")
    sub = read_within(folder, lab)
    assert sub.scripts["part1"] is None and "does not exist" in sub.problems["part1"]


def test_a_symlink_that_stays_inside_is_read(folder, lab) -> None:
    """The decision (docs/grading.md): symlinks are followed while they stay inside the submission."""
    (folder / "scripts").mkdir()
    (folder / "scripts" / "one.sh").write_text("echo one\n")
    (folder / "part1.sh").symlink_to(Path("scripts") / "one.sh")
    (folder / "answers.yaml").write_text("schema_version: 1\nanswers: {}\n")
    (folder / QUIZ_FILE).symlink_to("answers.yaml")
    sub = read_within(folder, lab)
    assert sub.scripts["part1"] == "echo one\n" and has_work(sub.scripts["part1"]) and "part1" not in sub.problems
    assert sub.quiz_file == (folder / "answers.yaml").resolve() and sub.quiz_problem is None


def test_a_quiz_file_symlinked_out_is_not_read(folder, lab, secret) -> None:
    (folder / QUIZ_FILE).symlink_to(secret)
    sub = read_within(folder, lab)
    assert sub.quiz_file is None
    assert sub.quiz_problem == "quiz.yaml is a symlink out of the submission: not read"


def test_grading_a_hostile_submission_names_each_reason_and_prints_no_secret(cli, folder, secret, tmp_path) -> None:
    """`lab grade` end to end (no script is read, so no sandbox starts): reasons named, the secret never shown."""
    (folder / "part1.sh").symlink_to(secret)
    (folder / "part2.sh").symlink_to("/dev/zero")
    os.mkfifo(folder / "part3.sh")
    (folder / "part4.sh").mkdir()
    (folder / "part5.sh").symlink_to("part5.sh")
    (folder / "part6.sh").write_bytes(b"#" * (MAX_SCRIPT_BYTES + 1))
    (folder / QUIZ_FILE).symlink_to(secret)
    out = tmp_path / "report.json"
    result = cli("--content", str(ROOT), "--backend", "docker", "grade", "5.3", "--submission", str(folder),
                 "--json", str(out), "--junit", str(tmp_path / "j.xml"), "-q")
    assert result.exit_code == 1, result  # graded, and failed: the student's problem, not the grader's
    everything = result.stdout + result.stderr + "".join(p.read_text() for p in tmp_path.iterdir() if p.is_file())
    assert "Traceback" not in everything and "the-grader-host-secret" not in everything
    data = json.loads(out.read_text())
    assert data["gradable"] is True and data["points"] == 0
    reasons = {p["part"]: p.get("reason") or "" for p in data["parts"]}
    assert "part1.sh is a symlink out of the submission" in reasons["part1"]
    assert "part2.sh is a symlink out of the submission" in reasons["part2"]
    assert "named pipe" in reasons["part3"] and "folder" in reasons["part4"] and "loop" in reasons["part5"]
    assert "too large" in reasons["part6"]
    assert data["quiz"]["error"] == "quiz.yaml is a symlink out of the submission: not read"


def test_json_reports_escape_c1_controls_from_a_students_output() -> None:
    """`lab grade --json -` prints a student's script output: U+009B (a terminal's CSI) goes out as \\u009b."""
    from labcoat.grading.reports import dumps

    data = {"output": "\x1b[2J \x9b31m \x85 \x7f caf\u00e9 \u202e"}
    text = dumps(data)
    assert json.loads(text) == data
    assert not any(0x7F <= ord(c) <= 0x9F or ord(c) < 0x20 and c != "\n" for c in text)
    assert "caf\u00e9" in text  # other non-ASCII stays readable
