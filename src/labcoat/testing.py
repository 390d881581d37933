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

__all__ = ["CheckFailed", "SandboxInfo", "expect", "parse_answers"]


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
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        sep = ":" if ":" in line and ("=" not in line or line.index(":") < line.index("=")) else "="
        if sep not in line:
            continue
        key, value = line.split(sep, 1)
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
