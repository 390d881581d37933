"""Issue 15, quiz answers files: every hostile case measured there is a clean error, fast.

An answers file comes from a student (directly, or inside a submission that `lab grade`
scores with the same reader). Exit 2 with file:line:col, never a traceback or a hang.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labcoat.content.files import MAX_YAML
from labcoat.errors import USAGE

NUMERIC = "oom-score-adj-never"  # a plain number question of quiz 5.3
BYTES = "eviction-default"  # a size question of quiz 5.3
TEXT = "java-pod-explain"  # a free-text question of quiz 5.3


def answers(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "answers.yaml"
    path.write_text("schema_version: 1\nquiz: \"5.3\"\nanswers:\n" + body, encoding="utf-8")
    return path


def quiz(cli, path: Path):
    start = time.monotonic()
    result = cli("quiz", "5.3", "--answers", str(path), "--json", "--no-save")
    assert time.monotonic() - start < 20, "took too long"
    assert "Traceback" not in result.stdout + result.stderr, result
    return result


@pytest.mark.parametrize(("body", "line", "words"), [
    (f"  {NUMERIC}: !!python/object/apply:os.system [echo]\n", 4, "explicit tag !!python/object/apply:os.system"),
    (f"  {NUMERIC}: !foo 20\n", 4, "explicit tag !foo"),
    (f"  {NUMERIC}: !!float abc\n", 4, "explicit tag !!float"),
    (f"  {NUMERIC}: &a [*a]\n", 4, "loop"),
    (f"  {NUMERIC}: " + "[" * 500 + "]" * 500 + "\n", 4, "nested"),
    (f"  {BYTES}: 1" + "0" * 400 + "\n", 4, "too large|digits"),
    (f"  {NUMERIC}: " + "1" * 4400 + "\n", 4, "too large|digits"),
    (f"  {NUMERIC}: 1e999999999\n", 4, "out of range"),
])
def test_hostile_values_are_clean_errors(cli, tmp_path: Path, body: str, line: int, words: str) -> None:
    result = quiz(cli, answers(tmp_path, body))
    assert result.exit_code == USAGE, result
    assert f"answers.yaml:{line}:" in result.stderr and re.search(words, result.stderr), result


def test_an_alias_bomb_is_refused_quickly(cli, tmp_path: Path) -> None:
    bomb = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        bomb += f"{name}: &{name} [{','.join(['*' + prev] * 9)}]\n"
    path = tmp_path / "bomb.yaml"
    path.write_text("schema_version: 1\nanswers: {}\n" + bomb)
    result = quiz(cli, path)
    assert result.exit_code == USAGE and "expand to more than" in result.stderr, result


@pytest.mark.parametrize(("name", "words"), [("fifo.yaml", "named pipe"), ("zero.yaml", "character device")])
def test_a_fifo_or_a_device_is_not_read(tmp_path: Path, name: str, words: str) -> None:
    """In a child process: reading a FIFO would block this test run forever, /dev/zero fill its memory."""
    os.mkfifo(tmp_path / "fifo.yaml")
    os.symlink("/dev/zero", tmp_path / "zero.yaml")
    result = _run_bounded(tmp_path / name, 30)
    assert result.returncode == USAGE and words in result.stderr, result


def test_a_huge_file_is_refused(cli, tmp_path: Path) -> None:
    path = answers(tmp_path, f"  {TEXT}: " + "x" * (MAX_YAML + 1) + "\n")
    result = quiz(cli, path)
    assert result.exit_code == USAGE and re.search("too large|at most", result.stderr), result


def _run_bounded(path: Path, seconds: float) -> subprocess.CompletedProcess[str]:
    """`lab quiz` in a child process that is killed when it runs over (a hang in C cannot be interrupted)."""
    env = {**os.environ, "LABCOAT_STATE": str(path.parent / "state")}
    return subprocess.run([sys.executable, "-m", "labcoat", "quiz", "5.3", "--answers", str(path), "--json",
                           "--no-save"], capture_output=True, text=True, timeout=seconds, env=env)


def test_a_huge_exponent_does_not_hang(tmp_path: Path) -> None:
    """Quoted, "1e999999999" reaches the quiz engine as text; Fraction(it) used to compute 10**999999999."""
    result = _run_bounded(answers(tmp_path, f'  {NUMERIC}: "1e999999999"\n'), 30)
    assert result.returncode in (0, 1, 2) and "Traceback" not in result.stderr, result


def test_a_long_text_answer_is_scored_fast(tmp_path: Path) -> None:
    """A 200 KB answer took 110 s (a negation scan quadratic in sentence length)."""
    start = time.monotonic()
    result = _run_bounded(answers(tmp_path, f"  {TEXT}: " + "it is not the limit " * 10_000 + "\n"), 60)
    assert result.returncode in (0, 1, 2) and "Traceback" not in result.stderr, result
    assert time.monotonic() - start < 30
