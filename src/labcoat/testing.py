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

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from labcoat.units import human, parse_size

__all__ = ["CheckFailed", "SandboxInfo", "cgroup_snapshot", "expect", "human", "parse_answers", "parse_size",
           "predict_oom_victim"]


class CheckFailed(AssertionError):
    """A check's verdict with what it expected, what it found and a hint."""

    def __init__(self, expected: Any, found: Any, hint: str | None = None, message: str | None = None) -> None:
        self.expected = expected
        self.found = found
        self.hint = hint
        super().__init__(message or f"expected {expected}, found {found}")


def expect(condition: bool, *, expected: Any, found: Any, hint: str | None = None) -> None:
    """Fail the check with expected/found/hint unless `condition` holds.

    >>> expect(2 > 1, expected="2 > 1", found=2)
    >>> try:
    ...     expect(False, expected="a PID", found="nothing", hint="look at ps")
    ... except CheckFailed as exc:
    ...     print(exc.expected, "|", exc.found, "|", exc.hint)
    a PID | nothing | look at ps
    """
    if not condition:
        raise CheckFailed(expected=expected, found=found, hint=hint)


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
    "ranked": [{"pid", "comm", "points", "oom_score_adj", "oom_score"}...], "oom_score_pick"}.
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
    ranked = [{"pid": s.proc.pid, "comm": s.proc.comm, "points": s.points, "oom_score_adj": s.proc.oom_score_adj,
               "oom_score": s.proc.oom_score} for s in prediction.ranked]
    pick = max(procs, key=lambda p: (p.oom_score or -1, p.pid)) if procs else None
    return {"victim_pid": prediction.victim.pid if prediction.victim else None,
            "victim": prediction.victim.comm if prediction.victim else None,
            "ranked": ranked, "oom_score_pick": pick.pid if pick else None}
