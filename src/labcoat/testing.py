"""The public API for check authors: what a check file may import from labcoat.

Checks are ordinary pytest-testinfra tests. They take the `host` fixture (testinfra's
Host, running commands inside the sandbox) and, when they need the host side, the
`sandbox` fixture (a `SandboxInfo`). To say what was expected and what was found, and
to give a hint that helps without giving the answer away, use `expect`:

    from labcoat.testing import expect

    def test_largest_pid(host, sandbox):
        \"\"\"You recorded the PID of the largest process (by RSS).\"\"\"
        answers = sandbox.answers("part1")
        truth = ...
        expect(answers.get("largest_pid") == str(truth), expected="the PID of the process with the largest RSS",
               found=answers.get("largest_pid", "nothing recorded"), hint="ps can sort by rss")

A plain `assert` works too; its message is shown as what was found. A check that cannot
run on this host calls `pytest.skip(reason)`: the part is then reported as skipped with
that reason, never as failed. Any other exception is an infrastructure error.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from labcoat.hostinfo import time_scale  # LABCOAT_TIME_SCALE: how much longer a sampling window may be
from labcoat.units import human, parse_size

__all__ = ["CheckFailed", "SandboxInfo", "cgroup_snapshot", "collecting_mutations", "diagnose", "exit_race", "expect",
           "human", "judge_choice", "judge_number", "parse_answers", "parse_number", "parse_size", "plausible",
           "predict_oom_victim", "time_scale"]


class CheckFailed(AssertionError):
    """A check's verdict with what it expected, what it found and a hint."""

    def __init__(self, expected: Any, found: Any, hint: str | None = None, message: str | None = None,
                 truth: Any = None) -> None:
        self.expected = expected
        self.found = found
        self.hint = hint
        self.truth = truth  # the live figure: shown to instructors (`lab check --reveal`, `lab grade`), never to learners
        super().__init__(message or f"expected {expected}, found {found}")


def expect(condition: bool, *, expected: Any, found: Any, hint: str | None = None, truth: Any = None) -> None:
    """Fail the check with expected/found/hint unless `condition` holds.

    >>> expect(2 > 1, expected="2 > 1", found=2)
    >>> try:
    ...     expect(False, expected="a PID", found="nothing", hint="look at ps")
    ... except CheckFailed as exc:
    ...     print(exc.expected, "|", exc.found, "|", exc.hint)
    a PID | nothing | look at ps
    """
    if not condition:
        raise CheckFailed(expected=expected, found=found, hint=hint, truth=truth)


def parse_answers(text: str) -> dict[str, str]:
    """Parse `key: value` (or `key=value`) lines; later lines win, '#' starts a comment.

    >>> parse_answers("largest_pid: 42\\n# note\\nmem_free=1000 kB\\n")
    {'largest_pid': '42', 'mem_free': '1000 kB'}
    """
    out: dict[str, str] = {}
    for raw in text.removeprefix("\ufeff").splitlines():  # editors on Windows may start the file with a BOM
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        sep = ":" if ":" in line and ("=" not in line or line.index(":") < line.index("=")) else "="
        if sep not in line:
            continue
        key, value = line.split(sep, 1)
        if key.strip():
            out[key.strip().lower()] = value.strip()
    return out


# ---------------------------------------------------------------------------------------------
# Feedback that diagnoses the learner's figure without printing the live one, and the families of
# plausible wrong values that `lab selftest` turns into generated decoys.

# value = truth x factor: the unit slips a learner plausibly makes (and `lab selftest` tries).
UNIT_SLIPS: tuple[tuple[float, str], ...] = (
    (1024, "1024 times too large: the right figure in a unit 1024 times smaller (e.g. bytes or KiB where {unit} "
           "were asked)"),
    (1 / 1024, "1024 times too small: the right figure in a unit 1024 times larger (e.g. KiB or MiB where {unit} "
               "were asked)"),
    (1000, "1000 times too large: a decimal unit slip (e.g. ms where s, or bytes where kB were asked)"),
    (1 / 1000, "1000 times too small: a decimal unit slip (e.g. kB where bytes were asked)"),
)
# Only diagnosed, not generated: they are unit slips too, but not the families the course names.
_EXTRA_SLIPS: tuple[tuple[float, str], ...] = (
    (1024 * 1024, "about a million (1024 x 1024) times too large: a unit slip ({unit} asked)"),
    (1 / (1024 * 1024), "about a million (1024 x 1024) times too small: MiB where {unit} were asked?"),
    (1.024, "2.4% too large: 1000 and 1024 mixed up (kB vs KiB, MB vs MiB)"),
    (1 / 1.024, "2.4% too small: 1000 and 1024 mixed up (kB vs KiB, MB vs MiB)"),
    (4096, "4096 times too large: pages counted as bytes?"),
    (1 / 4096, "4096 times too small: a count of 4 KiB pages where {unit} were asked"),
)


def parse_number(text: Any) -> float | None:
    """The first number of an answer ("1234", "1234 kB", "0.5s"), or None.

    >>> parse_number("1234 kB"), parse_number("0.25s"), parse_number("n/a"), parse_number(None)
    (1234, 0.25, None, None)
    """
    import re

    match = re.match(r"^\s*(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)", str(text)) if text is not None else None
    if not match:
        return None
    value = float(match.group(1))
    return int(value) if value.is_integer() and abs(value) < 2**63 else value


def diagnose(value: float | None, truth: float, mistakes: Mapping[str, float | None] | None = None, *,
             tolerance: float = 0, unit: str = "", stale_within: float | None = None,
             exact_near: bool = True, copied_within: float | Mapping[str, float] = 0) -> str | None:
    """Words on what `value` is, compared with `truth`; None when it is right.

    Right means: within `tolerance` of the truth, and nearer to it than to any named
    mistake (a plausible wrong figure: another field, the host's figure, the previous
    reading). A mistake that lies within twice the tolerance of the truth cannot be told
    apart from it by nearness (both move with the host: a right reading a minute old may be
    nearer to it), so it counts only when the value is that figure exactly (MemTotal
    copied as it stands); with `exact_near=False` it does not count at all (`lab selftest`
    then lists it as indistinct). `copied_within` widens "exactly" to the rounding of the
    tool a learner plausibly copies it from (1024 kB: MemTotal read with `free -m` and
    multiplied by 1024), for every mistake or, as a mapping, for the mistakes it names; still
    only when the value is nearer to the mistake than to the truth.
    The words name the mistake; they never contain the truth
    or a mistake's figure, so a learner cannot copy the answer out of them.

    >>> mistakes = {"MemTotal (all the host RAM), not MemAvailable": 24684092, "MemFree": 18931164}
    >>> diagnose(23551928, 23572000, mistakes, tolerance=262144) is None
    True
    >>> diagnose(24684092, 23572000, mistakes, tolerance=262144)
    'this is MemTotal (all the host RAM), not MemAvailable'
    >>> diagnose(23551928 * 1024, 23572000, mistakes, tolerance=262144, unit="kB")
    '1024 times too large: the right figure in a unit 1024 times smaller (e.g. bytes or KiB where kB were asked)'
    >>> diagnose(23000000, 23572000, mistakes, tolerance=262144, stale_within=4 * 262144)
    'near the right figure, but further off than it moves between your reading and the check: a stale reading? read it again just before you check'
    >>> small = {"MemTotal, not MemAvailable": 4014500}  # a 4 GiB VM with 700 MiB in use
    >>> diagnose(3920 * 1024, 3297280, small, tolerance=1048576) is None  # free -m x 1024: not exact
    True
    >>> diagnose(3920 * 1024, 3297280, small, tolerance=1048576, copied_within=1024)
    'this is MemTotal, not MemAvailable'
    >>> diagnose(3920 * 1024, 3297280, small, tolerance=1048576, copied_within={"MemTotal, not MemAvailable": 1024})
    'this is MemTotal, not MemAvailable'
    >>> diagnose(7, 23572000, mistakes, tolerance=262144)
    'not a figure the sandbox shows, and no usual slip (another field, a unit, the host) explains it'
    """
    if value is None:
        return "nothing recorded, or not a number"
    gap = abs(value - truth)
    named = [(abs(value - m), name) for name, m in (mistakes or {}).items() if m is not None]
    closest = min(named, default=None)
    distinct = [(abs(value - m), name) for name, m in (mistakes or {}).items()
                if m is not None and abs(m - truth) > 2 * tolerance]
    def window(name: str) -> float:
        return copied_within.get(name, 0) if isinstance(copied_within, Mapping) else copied_within

    copied = [(d, name) for name, m in (mistakes or {}).items() if m is not None and exact_near
              and abs(m - truth) <= 2 * tolerance and (d := abs(value - m)) <= max(0.5, abs(m) * 1e-9, window(name))
              and d < gap]
    if copied:
        return f"this is {min(copied)[1]}"
    closest_distinct = min(distinct, default=None)
    if gap <= tolerance and (closest_distinct is None or gap < closest_distinct[0]):
        return None
    if closest is not None and closest[0] < gap and closest[0] <= max(tolerance, abs(value) * 0.005):
        return f"this is {closest[1]}"
    slip = _unit_slip(value, truth, tolerance, big=True)
    if slip:
        return slip.format(unit=unit or "the stated unit")
    if closest is not None and closest[0] < gap / 2:
        return f"closer to {closest[1]} than to the figure asked for"
    if stale_within is not None and gap <= stale_within:
        return ("near the right figure, but further off than it moves between your reading and the check: "
                "a stale reading? read it again just before you check")
    slip = _unit_slip(value, truth, tolerance, big=False)
    if slip:
        return slip.format(unit=unit or "the stated unit")
    return "not a figure the sandbox shows, and no usual slip (another field, a unit, the host) explains it"


def _unit_slip(value: float, truth: float, tolerance: float, *, big: bool) -> str | None:
    """The nearest unit slip (relative error within the tolerance scaled by it, or 1%): far (x1000,
    x1024...) or near (x1.024) factors."""
    if not truth or not value:
        return None
    allowed = max(tolerance / abs(truth), 0.01)
    slips = [(abs(value / (truth * f) - 1), words) for f, words in (*UNIT_SLIPS, *_EXTRA_SLIPS)
             if (abs(f - 1) > 0.5) == big]
    error, words = min(slips)
    return words if error <= allowed else None


# `lab selftest` collects, per check and answer key, the wrong values the checks know of.
_families: list[dict[str, Any]] | None = None


@contextmanager
def collecting_mutations() -> Iterator[list[dict[str, Any]]]:
    """While active, every judge_* call records its answer key and plausible wrong values.

    >>> with collecting_mutations() as found:
    ...     _ = judge_number("25", 25, key="n", what="25", mistakes={"twice it": 50})
    >>> [(f["key"], sorted(f["values"])) for f in found]
    [('n', ['0.0244141', '0.025', '25000', '25600', '50'])]
    """
    global _families
    saved, _families = _families, []
    try:
        yield _families
    finally:
        _families = saved


def _current_check() -> str:
    # "checks/x/test_part1.py::test_mem_free (call)" while pytest runs a test.
    current = os.environ.get("PYTEST_CURRENT_TEST", "")
    return current.split("::")[-1].split(" ")[0] if current else ""


def _show(value: Any) -> str:
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.6g}"
    return str(value)


def _record(key: str | None, truth: Any, values: Mapping[str, Any], accepts: Callable[[Any], bool]) -> None:
    if _families is None or key is None:
        return
    kept: dict[str, str] = {}
    indistinct: list[str] = []
    for name, value in values.items():
        if value is None:
            continue
        shown = _show(value)
        if accepts(value):
            indistinct.append(name)  # right by the check's own rule here: not a mistake in this sandbox
        elif shown not in kept:
            kept[shown] = name
    _families.append({"check": _current_check(), "key": key, "truth": _show(truth),
                      "values": kept, "indistinct": indistinct})


def plausible(key: str, truth: Any, mistakes: Mapping[str, Any]) -> None:
    """Declare wrong values for answer `key` that a check rejects by a rule of its own (not judge_*).

    `lab selftest` writes each into the answers file in turn, and the part must then fail.

    >>> with collecting_mutations() as found:
    ...     plausible("cold_seconds", 0.05, {"the warm time": 0.004})
    >>> found[0]["values"]
    {'0.004': 'the warm time'}
    """
    _record(key, truth, {k: v for k, v in mistakes.items() if v is not None and _show(v) != _show(truth)},
            lambda v: False)


def judge_number(found: Any, truth: float | None, *, what: str, key: str | None = None, unit: str = "",
                 tolerance: float = 0, mistakes: Mapping[str, float | None] | None = None, hint: str | None = None,
                 stale_within: float | None = None, slips: bool = True,
                 copied_within: float | Mapping[str, float] = 0) -> float:
    """Fail the check, in words, unless the recorded `found` is `truth` (see `diagnose`); return the number.

    `what` says what was expected in words (never the figure); `key` is the answer key, so that
    `lab selftest` can try the `mistakes` and the unit slips as generated decoys. `copied_within`:
    how far from a mistake near the truth a figure still counts as that mistake copied (see `diagnose`).

    >>> judge_number("1024", 1000, what="about 1000 kB", tolerance=30)
    1024
    >>> try:
    ...     judge_number("1000000", 1000, what="MemFree in kB", unit="kB", tolerance=30)
    ... except CheckFailed as exc:
    ...     print(exc.expected, "|", exc.found, "|", exc.truth)
    MemFree in kB | 1000000: 1000 times too large: a decimal unit slip (e.g. ms where s, or bytes where kB were asked) | 1000 kB
    """
    value = parse_number(found)
    if truth is None:
        raise RuntimeError(f"the live figure for {what!r} could not be read")
    generated = {f"the figure x {_show(f)} (a unit slip)": truth * f for f, _ in UNIT_SLIPS} if slips else {}

    def accepts(v: Any) -> bool:  # a mistake too near the truth to be told apart is not tried as a decoy
        return diagnose(parse_number(v), truth, mistakes, tolerance=tolerance, exact_near=False) is None

    _record(key, truth, {**(mistakes or {}), **generated}, accepts)
    words = diagnose(value, truth, mistakes, tolerance=tolerance, unit=unit, stale_within=stale_within,
                     copied_within=copied_within)
    if words is not None:
        shown = "nothing recorded" if found in (None, "") else f"{found}: {words}"
        raise CheckFailed(expected=what, found=shown, hint=hint, truth=f"{_show(truth)} {unit}".strip())
    return value  # type: ignore[return-value]


def judge_choice(found: Any, truth: Any, *, what: str, key: str | None = None,
                 mistakes: Mapping[str, Any] | None = None, hint: str | None = None) -> None:
    """Fail the check, in words, unless `found` (a PID, a name) equals `truth`; name the mistake it is.

    >>> try:
    ...     judge_choice("42", 7, what="the largest process", mistakes={"the second-largest process": 42})
    ... except CheckFailed as exc:
    ...     print(exc.found)
    42: this is the second-largest process
    """
    right = str(truth)
    _record(key, truth, dict(mistakes or {}), lambda v: str(v) == right)
    text = "" if found is None else str(found).strip()
    if text == right:
        return
    names = [name for name, value in (mistakes or {}).items() if value is not None and str(value) == text]
    if not text:
        words = "nothing recorded"
    elif names:
        words = f"{text}: this is " + " and ".join(names)
    else:
        words = f"{text}: none of the candidates the sandbox shows fits"
    raise CheckFailed(expected=what, found=words, hint=hint, truth=right)


@dataclass
class SandboxInfo:
    """What a check may know about the sandbox beyond `host`: limits, seed, host-side reads."""

    lab_id: str
    name: str
    seed: int
    memory_limit: int
    backend: str
    cgroup_version: int
    answers_dir: str = "/root/answers"
    _host_reader: Callable[[], Any] | None = field(default=None, repr=False)
    _records: Callable[[str], Mapping[str, Any] | None] | None = field(default=None, repr=False)
    _answers: Callable[[str], str] | None = field(default=None, repr=False)

    def answers(self, part_id: str) -> dict[str, str]:
        """The learner's recorded answers for a part (`<answers_dir>/<part_id>.txt`), parsed."""
        text = self._answers(part_id) if self._answers else ""
        return parse_answers(text)

    def host_cgroup(self) -> Any:
        """A `labcoat.cgroup.MemorySnapshot` of the sandbox read from the host side (PSI included)."""
        if self._host_reader is None:
            raise RuntimeError("host-side cgroup reads are not available with this backend")
        return self._host_reader()

    def run_record(self, name: str) -> Mapping[str, Any] | None:
        """What the scenario runner measured during the last run of scenario `name` here, if any."""
        return self._records(name) if self._records else None

    def container(self, name: str) -> dict[str, Any] | None:
        """`docker inspect` of a container the learner started on the host, or None when there is none."""
        if self._inspect is None:
            return None
        return self._inspect(name)

    def container_cgroup(self, name: str) -> Any:
        """A MemorySnapshot of a learner's container, read from the host (None when it is not running)."""
        return self._container_cgroup(name) if self._container_cgroup else None

    _inspect: Callable[[str], dict[str, Any] | None] | None = field(default=None, repr=False)
    _container_cgroup: Callable[[str], Any] | None = field(default=None, repr=False)


def cgroup_snapshot(host: Any) -> Any:
    """The sandbox's own memory cgroup as seen from inside (v1 or v2), in one command.

    Returns a `labcoat.cgroup.MemorySnapshot`: `.limit`, `.usage`, `.file` (page cache),
    `.anon`, `.oom_kill`, ... in bytes and counts, None where the file is not there.
    """
    from labcoat import cgroup

    return cgroup.parse_snapshot(host.check_output(cgroup.inside_snapshot_command()[2]))


def predict_oom_victim(host: Any) -> dict[str, Any]:
    """Which process a memory-cgroup OOM would kill now, by the kernel's own arithmetic.

    Badness is RSS + swap + page tables + oom_score_adj x (the cgroup's limit in pages
    / 1000), as mm/oom_kill.c oom_badness() computes it for a memcg OOM; not
    /proc/PID/oom_score, which scales by host RAM. Returns {"victim_pid", "victim",
    "ranked": [{"pid", "comm", "points", "rss_pages", "oom_score_adj", "oom_score"}...],
    "oom_score_pick"}.
    """
    from labcoat import cgroup, oom

    marker, swap_marker = "=== labcoat-procs-start", "=== labcoat-swap"
    # One command: the cgroup, the host's swap size (it caps the memcg's swap allowance), the processes.
    script = (cgroup.inside_snapshot_command()[2].replace("exit 0\n", "")
              + f"\necho '{swap_marker}'; grep '^SwapTotal:' /proc/meminfo\necho '{marker}'\n"
              + oom.procs_command()[2])
    out = host.check_output(script)
    head, _, procs_text = out.partition(marker)
    snap_text, _, swap_text = head.partition(swap_marker)
    snap = cgroup.parse_snapshot(snap_text)
    procs = [p for p in oom.parse_procs(procs_text) if not p.kthread]
    swap_kb = int(swap_text.split()[1]) if len(swap_text.split()) > 1 else 0
    prediction = oom.predict_victim(procs, oom.snapshot_totalpages(snap, swap_kb * 1024))
    ranked = [{"pid": s.proc.pid, "comm": s.proc.comm, "points": s.points, "rss_pages": s.proc.rss_pages,
               "oom_score_adj": s.proc.oom_score_adj, "oom_score": s.proc.oom_score} for s in prediction.ranked]
    pick = max(procs, key=lambda p: (p.oom_score or -1, p.pid)) if procs else None
    return {"victim_pid": prediction.victim.pid if prediction.victim else None,
            "victim": prediction.victim.comm if prediction.victim else None,
            "ranked": ranked, "oom_score_pick": pick.pid if pick else None}


def exit_race(kills: int, gone: list[int], ranked: list[dict[str, Any]]) -> tuple[int, ...]:
    """(first victim, second) when two OOM kills in a row are the kernel's exit race; () otherwise.

    Seen on Linux 6.18 (2026-12-02, dmesg: kills 23 ms apart, the memcg at 190 of 256 MiB at the
    second): the victim's exit_mmap() sets MMF_OOM_SKIP once its pages are unmapped, before the
    mmu_gather frees and uncharges them (mm/mmap.c); the allocator, still retrying its charge, then
    finds the victim skipped (oom_evaluate_task, mm/oom_kill.c) and the memcg still full, and kills
    the next in line. So: two kills, the top of the memcg arithmetic gone, and besides it at most the
    runner-up (or a process that was not in the snapshot: the allocator itself). `gone`: the PIDs
    that died; `ranked`: the memcg arithmetic's ranking before the OOM ({"pid": ...}, top first).

    >>> exit_race(2, [22, 37], [{"pid": 22}, {"pid": 37}, {"pid": 12}])
    (22, 37)
    >>> exit_race(2, [22, 12], [{"pid": 22}, {"pid": 37}, {"pid": 12}])
    ()
    """
    order = [r["pid"] for r in ranked]
    if kills != 2 or not order or order[0] not in gone:
        return ()
    others = [pid for pid in gone if pid != order[0]]
    if len(others) > 1 or (others and others[0] not in order[1:2]):
        return ()
    return (order[0], *others)
