"""The shared fake backend for unit tests: the whole Backend Protocol in memory, no engine.

It keeps machines (labels, status, the spec each was started with), records every command,
spawn, file written and removal, and answers `run` through `answer`: a test replaces it
(or subclasses) to play a sandbox. `stop_all()` plays an engine restart (every machine
stopped, resumable). Import it as `from fakes import FakeBackend` (tests/unit is on
sys.path in pytest's default import mode, as for conftest.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from labcoat.backends.base import Backend, CommandResult, Machine, MachineSpec

Answer = Callable[[Machine, list[str]], CommandResult]


@dataclass
class Call:
    """One command a test's code ran in a machine."""

    machine: str
    argv: list[str]
    user: str | None = None
    env: dict[str, str] = field(default_factory=dict)


class FakeBackend(Backend):
    """Every Backend member, in memory. `is_container` is per instance (set False to play `local`)."""

    name: ClassVar[str] = "fake"

    def __init__(self, *, is_container: bool = True, answer: Answer | None = None) -> None:
        self.is_container = is_container  # type: ignore[misc]
        self.answer: Answer = answer or (lambda machine, argv: CommandResult(0, "", ""))
        self.machines: dict[str, Machine] = {}
        self.specs: dict[str, MachineSpec] = {}
        self.calls: list[Call] = []
        self.spawned: list[list[str]] = []
        self.files: dict[tuple[str, str], bytes] = {}
        self.removed: list[str] = []
        self.resumed: list[str] = []
        self.frozen: list[str] = []
        self.images: list[str] = []
        self.changes: list[str] = []
        self.fail_start_at: int | None = None  # the n-th start (0-based) raises, to test clean-up
        self.started = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self, spec: MachineSpec, labels: Mapping[str, str]) -> Machine:
        n = self.started
        self.started += 1
        if self.fail_start_at is not None and n == self.fail_start_at:
            from labcoat.errors import EnvironmentProblem

            raise EnvironmentProblem(f"fake: start #{n} fails")
        machine = Machine(id=f"fake{n:04d}", name=spec.name or f"fake-{n}", labels=dict(labels))
        self.machines[machine.id] = machine
        self.specs[machine.id] = spec
        return machine

    def find(self, labels: Mapping[str, str], *, include_stopped: bool = True) -> list[Machine]:
        return [m for m in self.machines.values()
                if (include_stopped or m.is_running)
                and all(m.labels.get(k) == v if v else k in m.labels for k, v in labels.items())]

    def remove(self, machine: Machine) -> None:
        self.removed.append(machine.id)
        self.machines.pop(machine.id, None)

    def resume(self, machine: Machine, timeout: float = 60) -> Machine:
        self.resumed.append(machine.id)
        self.machines[machine.id].status = "running"
        return self.machines[machine.id]

    def stop_all(self) -> None:
        """What an engine restart does: every machine stopped, kept."""
        for m in self.machines.values():
            m.status = "exited"

    def host_pid(self, machine: Machine) -> int | None:
        return None

    def freeze(self, machine: Machine) -> None:
        self.frozen.append(machine.id)

    def thaw(self, machine: Machine) -> None:
        self.frozen.remove(machine.id)

    def changed_files(self, machine: Machine) -> list[str]:
        return list(self.changes)

    def run_beside(self, machine: Machine, argv: Sequence[str], labels: Mapping[str, str]) -> None:
        self.calls.append(Call(machine.id, ["<beside>", *argv]))

    # ------------------------------------------------------------------ commands and files

    def run(self, machine: Machine, argv: Sequence[str], *, user: str | None = None, timeout: float | None = 60,
            env: Mapping[str, str] | None = None, max_output: int = 1 << 20) -> CommandResult:
        self.calls.append(Call(machine.id, list(argv), user, dict(env or {})))
        return self.answer(machine, list(argv))

    def spawn(self, machine: Machine, argv: Sequence[str], *, user: str | None = None) -> None:
        self.spawned.append(list(argv))

    def put(self, machine: Machine, src: Path, dest: str) -> None:
        for path in [src, *sorted(src.rglob("*"))] if src.is_dir() else [src]:
            if path.is_file():
                self.files[(machine.id, f"{dest}/{path.relative_to(src.parent)}")] = path.read_bytes()

    def put_bytes(self, machine: Machine, data: bytes, dest: str, mode: int = 0o644) -> None:
        self.files[(machine.id, dest)] = data

    # ------------------------------------------------------------------ images and the rest

    def ensure_image(self, image_id: str, image: Any, image_dir: Path | None,
                     progress: Callable[[str, float | None], None] | None = None) -> str:
        self.images.append(image_id)
        return f"fake/{image_id}:test" if self.is_container else ""

    def inspect(self, machine: Machine, *, size: bool = False) -> dict[str, Any]:
        m = self.machines[machine.id]
        return {"State": {"Running": m.is_running, "Pid": 0, "ExitCode": 0 if m.is_running else 255,
                          "FinishedAt": "" if m.is_running else "2026-12-02T01:02:03Z"}}

    def shell_command(self, machine: Machine, *, user: str | None = None) -> tuple[list[str], dict[str, str]]:
        return ["fake-shell", machine.id], {}

    # ------------------------------------------------------------------ for assertions

    def argvs(self, machine: Machine | None = None) -> list[list[str]]:
        return [c.argv for c in self.calls if machine is None or c.machine == machine.id]

    def running(self) -> list[Machine]:
        return [m for m in self.machines.values() if m.is_running]
