"""The sandbox backend contract: start, run, put, find, remove.

Modelled on testinfra's one-verb backend (`run(command) -> CommandResult`) plus the
lifecycle testinfra leaves out. Commands are argv lists, never shell strings; a step
that needs a shell says so with `run_shell`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol


@dataclass(frozen=True)
class CommandResult:
    """What a command did.

    >>> r = CommandResult(exit_status=0, stdout="hi\\n", stderr="")
    >>> r.succeeded, r.stdout.strip()
    (True, 'hi')
    """

    exit_status: int
    stdout: str
    stderr: str
    duration: float = 0.0
    timed_out: bool = False
    truncated: bool = False

    @property
    def succeeded(self) -> bool:
        return self.exit_status == 0 and not self.timed_out

    @property
    def failed(self) -> bool:
        return not self.succeeded


@dataclass(frozen=True)
class MachineSpec:
    """Everything needed to start one sandbox."""

    image: str
    memory: int  # bytes; memory+swap is set to the same value, plus `swap`
    name: str | None = None
    pids_limit: int = 256
    cpus: float | None = None
    network: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    no_new_privileges: bool = True
    command: tuple[str, ...] = ("sleep", "infinity")
    env: Mapping[str, str] = field(default_factory=dict)
    hostname: str = "lab"
    # No container log: nobody reads a sandbox's PID 1 output, and a script writing to
    # /proc/1/fd/1 would otherwise grow a file on the host's disk without bound.
    keep_log: bool = False
    swap: int = 0  # bytes of swap allowed on top of memory (SandboxSpec.swap); 0: memory+swap == memory
    # Host folder -> path inside, bind-mounted read-write (a learner's sandbox: its answers folder, so
    # the answers live on the host). Backends without containers ignore it.
    mounts: Mapping[str, str] = field(default_factory=dict)

    # Disk: no file bigger than `disk` bytes (RLIMIT_FSIZE; None: no limit); `tmpfs` folders (path -> bytes)
    # live in memory, charged to the memory cgroup; `read_only` makes them the only writable places.
    disk: int | None = None
    tmpfs: Mapping[str, int] = field(default_factory=dict)
    read_only: bool = False
    cpu_shares: int | None = None  # relative CPU weight (None: the engine's default, 1024)
    io_weight: int | None = None  # relative block I/O weight 10..1000 (None: none; set only where supported)


@dataclass
class Machine:
    """A running (or created) sandbox as a backend knows it."""

    id: str
    name: str
    labels: dict[str, str]
    status: str = "running"
    handle: Any = None  # backend-private object (e.g. the docker SDK container)

    @property
    def is_running(self) -> bool:
        return self.status == "running"

    def label(self, key: str, default: str = "") -> str:
        return self.labels.get(key, default)


class Backend(Protocol):
    """Where sandboxes live. Implementations: `docker` (containers), `local` (this host)."""

    name: ClassVar[str]

    def start(self, spec: MachineSpec, labels: Mapping[str, str]) -> Machine: ...

    def run(
        self,
        machine: Machine,
        argv: Sequence[str],
        *,
        user: str | None = None,
        timeout: float | None = 60,
        env: Mapping[str, str] | None = None,
        max_output: int = 1 << 20,
    ) -> CommandResult: ...

    def spawn(self, machine: Machine, argv: Sequence[str], *, user: str | None = None) -> None: ...

    def put(self, machine: Machine, src: Path, dest: str) -> None: ...

    def find(self, labels: Mapping[str, str], *, include_stopped: bool = True) -> list[Machine]: ...

    def remove(self, machine: Machine) -> None: ...

    def host_pid(self, machine: Machine) -> int | None: ...


def run_shell(backend: Backend, machine: Machine, script: str, **kwargs: Any) -> CommandResult:
    """Run a shell script inside the machine with /bin/sh -c."""
    return backend.run(machine, ["/bin/sh", "-c", script], **kwargs)
