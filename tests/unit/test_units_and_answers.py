"""Sizes, a learner's answers file, the check authors' `expect`, and progress kept across sessions."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from labcoat.runner import progress
from labcoat.testing import CheckFailed, SandboxInfo, expect, parse_answers
from labcoat.units import human, parse_size

KiB, MiB, GiB, TiB = 1 << 10, 1 << 20, 1 << 30, 1 << 40

# ----------------------------------------------------------------------------- parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("64m", 64 * MiB),
        ("64M", 64 * MiB),
        ("64mb", 64 * MiB),
        ("64MB", 64 * MiB),  # binary, as Docker reads it
        ("256Mi", 256 * MiB),
        ("256MiB", 256 * MiB),
        ("1G", GiB),
        ("1gi", GiB),
        ("1GiB", GiB),
        ("10Gi", 10 * GiB),
        ("1t", TiB),
        ("1k", KiB),
        ("1KiB", KiB),
        ("10737418240", 10 * GiB),
        ("0", 0),
        ("10b", 10),
        ("10B", 10),
        ("1.5k", 1536),
        ("0.5m", 512 * KiB),
        ("1.5", 1),  # fractions of a byte are dropped
        (" 64 m ", 64 * MiB),
        ("64\tm", 64 * MiB),
        (4096, 4096),
        (0, 0),
    ],
)
def test_parse_size(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected
    assert type(parse_size(text)) is int


@pytest.mark.parametrize(
    "text",
    ["", " ", "m", "Mi", "-1", "+1", "1e3", "1x", "1kk", "1 k k", "1i", "1ib", "1,5m", "1.m", ".5m", "64 mebibytes",
     "1p", "0x10", -1, True, False, 1.5, None],
)
def test_parse_size_refuses(text: object) -> None:
    with pytest.raises(ValueError) as info:
        parse_size(text)  # type: ignore[arg-type]
    assert str(info.value) == f"not a size: {text!r} (write e.g. 64m, 256Mi, 1G or a number of bytes)"


# ----------------------------------------------------------------------------- human


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, "0 B"),
        (1, "1 B"),
        (12, "12 B"),
        (1023, "1023 B"),
        (1023.9, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (1048524, "1023.9 KiB"),
        (1048575, "1.0 MiB"),  # not "1024.0 KiB"
        (MiB, "1.0 MiB"),
        (64 * MiB, "64.0 MiB"),
        (GiB - 1, "1.0 GiB"),
        (GiB, "1.0 GiB"),
        (10 * GiB, "10.0 GiB"),
        (TiB, "1024.0 GiB"),  # GiB is the largest unit
        (-1, "-1 B"),
        (-2048, "-2.0 KiB"),
    ],
)
def test_human(n: float, expected: str) -> None:
    assert human(n) == expected


@pytest.mark.parametrize("text", ["64m", "256Mi", "1G", "1536", "3k"])
def test_human_reads_back_what_parse_size_reads(text: str) -> None:
    shown = human(parse_size(text))
    number, unit = shown.split()
    assert parse_size(number + {"B": "", "KiB": "k", "MiB": "m", "GiB": "g"}[unit]) == parse_size(text)


# ----------------------------------------------------------------------------- parse_answers


def test_parse_answers_both_separators_and_comments() -> None:
    text = "largest_pid: 42\n# a note\nmem_free=1000 kB\n\n   \nswap : 0   # none here\n"
    assert parse_answers(text) == {"largest_pid": "42", "mem_free": "1000 kB", "swap": "0"}


def test_parse_answers_later_lines_win() -> None:
    assert parse_answers("pid: 1\npid: 2\nPID = 3\n") == {"pid": "3"}


def test_parse_answers_keys_are_lower_case_values_keep_their_case() -> None:
    assert parse_answers("Victim_PID: Hog-1\n") == {"victim_pid": "Hog-1"}


def test_parse_answers_the_first_separator_splits() -> None:
    assert parse_answers("time: 12:30\nratio=1:2\nexpr: a=b\n") == {"time": "12:30", "ratio": "1:2", "expr": "a=b"}


def test_parse_answers_ignores_lines_without_a_key() -> None:
    assert parse_answers("just some words\n: 5\n= 6\npid: 7\n") == {"pid": "7"}


def test_parse_answers_empty_value() -> None:
    assert parse_answers("pid:\n") == {"pid": ""}


def test_parse_answers_windows_line_ends_and_bom() -> None:
    assert parse_answers("\ufefflargest_pid: 42\r\nswap: 0\r\n") == {"largest_pid": "42", "swap": "0"}


def test_parse_answers_hash_starts_a_comment_even_in_a_value() -> None:
    assert parse_answers("url: http://x/#part\n") == {"url": "http://x/"}


def test_parse_answers_nothing() -> None:
    assert parse_answers("") == {}
    assert parse_answers("# only notes\n") == {}


def test_sandbox_info_answers_parses_the_learners_file() -> None:
    files = {"part1": "Largest_PID: 42\n"}
    info = SandboxInfo(lab_id="1.1", name="sb", seed=7, memory_limit=64 * MiB, backend="local", cgroup_version=2,
                       _answers=lambda part: files.get(part, ""))
    assert info.answers("part1") == {"largest_pid": "42"}
    assert info.answers("part2") == {}
    assert SandboxInfo("1.1", "sb", 7, 64 * MiB, "local", 2).answers("part1") == {}
    assert info.run_record("fill") is None
    with pytest.raises(RuntimeError, match="not available"):
        info.host_cgroup()


# ----------------------------------------------------------------------------- expect


def test_expect_passes_silently() -> None:
    assert expect(True, expected="anything", found="anything") is None


def test_expect_fails_with_expected_found_and_hint() -> None:
    with pytest.raises(CheckFailed) as info:
        expect(False, expected="the PID of the largest process", found="nothing recorded", hint="ps can sort by rss")
    exc = info.value
    assert (exc.expected, exc.found, exc.hint) == ("the PID of the largest process", "nothing recorded",
                                                   "ps can sort by rss")
    assert str(exc) == "expected the PID of the largest process, found nothing recorded"


def test_expect_without_hint() -> None:
    with pytest.raises(CheckFailed) as info:
        expect(1 == 2, expected=2, found=1)
    assert info.value.hint is None
    assert str(info.value) == "expected 2, found 1"


def test_check_failed_is_an_assertion_error() -> None:
    # pytest reports it as a failed check, never as an error of the infrastructure.
    assert issubclass(CheckFailed, AssertionError)
    assert str(CheckFailed(expected=1, found=2, message="custom")) == "custom"


def test_expect_takes_any_truthy_condition() -> None:
    expect([1], expected="a list", found=[1])  # type: ignore[arg-type]
    with pytest.raises(CheckFailed):
        expect([], expected="a list", found=[])  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- progress


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """progress.time.time() returns these, one per call."""
    ticks = [1000.0, 2000.0, 3000.0, 4000.0, 5000.0]
    it = iter(ticks)
    monkeypatch.setattr(progress, "time", SimpleNamespace(time=lambda: next(it)))
    return ticks


def _progress_file(lab_id: str) -> Path:
    import os

    return Path(os.environ["LABCOAT_STATE"]) / "progress" / f"{lab_id}.json"


def test_nothing_recorded_yet() -> None:
    assert progress.load("1.1") == {"parts": {}}


def test_record_persists_in_the_state_folder(clock: list[float]) -> None:
    progress.record("1.1", "part1", False)
    path = _progress_file("1.1")
    assert path.is_file()
    on_disk = json.loads(path.read_text())
    assert on_disk == {"parts": {"part1": {"passed": False, "first_passed": None, "checks": 1,
                                           "last_checked": 1000.0, "last_result": False}}}
    assert progress.load("1.1") == on_disk
    assert not path.with_suffix(".tmp").exists()


def test_a_passed_part_stays_passed_after_a_later_failed_check(clock: list[float]) -> None:
    progress.record("1.1", "part1", False)
    progress.record("1.1", "part1", True)
    progress.record("1.1", "part1", False)
    progress.record("1.1", "part1", True)
    entry = progress.load("1.1")["parts"]["part1"]
    assert entry["passed"] is True
    assert entry["first_passed"] == 2000.0  # the first pass, not the last
    assert entry["checks"] == 4
    assert entry["last_checked"] == 4000.0
    assert entry["last_result"] is True
    progress.record("1.1", "part1", False)
    entry = progress.load("1.1")["parts"]["part1"]
    assert (entry["passed"], entry["first_passed"], entry["last_result"]) == (True, 2000.0, False)


def test_parts_and_labs_are_kept_apart(clock: list[float]) -> None:
    progress.record("1.1", "part1", True)
    progress.record("1.1", "part2", False)
    progress.record("2.1", "part1", False)
    assert {p: e["passed"] for p, e in progress.load("1.1")["parts"].items()} == {"part1": True, "part2": False}
    assert {p: e["passed"] for p, e in progress.load("2.1")["parts"].items()} == {"part1": False}


def test_reset_one_part(clock: list[float]) -> None:
    progress.record("1.1", "part1", True)
    progress.record("1.1", "part2", True)
    progress.reset("1.1", "part1")
    assert list(progress.load("1.1")["parts"]) == ["part2"]
    progress.reset("1.1", "nope")  # an unknown part is not an error
    assert list(progress.load("1.1")["parts"]) == ["part2"]


def test_reset_the_whole_lab(clock: list[float]) -> None:
    progress.record("1.1", "part1", True)
    progress.record("2.1", "part1", True)
    progress.reset("1.1")
    assert not _progress_file("1.1").exists()
    assert progress.load("1.1") == {"parts": {}}
    assert progress.load("2.1")["parts"]["part1"]["passed"] is True
    progress.reset("1.1")  # twice is fine


def test_after_reset_a_pass_is_a_first_pass_again(clock: list[float]) -> None:
    progress.record("1.1", "part1", True)
    progress.reset("1.1", "part1")
    progress.record("1.1", "part1", True)
    entry = progress.load("1.1")["parts"]["part1"]
    assert (entry["first_passed"], entry["checks"]) == (2000.0, 1)


def test_a_damaged_progress_file_counts_as_no_progress() -> None:
    path = _progress_file("1.1")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{not json")
    assert progress.load("1.1") == {"parts": {}}
    path.write_text('{"parts": []}')
    assert progress.load("1.1") == {"parts": {}}
    progress.record("1.1", "part1", True)  # and recording replaces it
    assert progress.load("1.1")["parts"]["part1"]["passed"] is True
