"""The sandbox backend contract: start, run, put, find, remove, and what else callers need.

Modelled on testinfra's one-verb backend (`run(command) -> CommandResult`) plus the
lifecycle testinfra leaves out. Commands are argv lists, never shell strings; a step
that needs a shell says so with `run_shell`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from labcoat.content.models import Image


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
    ro_mounts: Mapping[str, str] = field(default_factory=dict)  # the same, read-only

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
    """Where sandboxes live. Implementations register in `labcoat.backends.BACKENDS`.

    Everything a caller may do with a sandbox is a member here: no code outside
    `labcoat.backends` touches an engine's SDK or asks which backend it has (a unit test
    enforces both). Where engines differ, a capability says so (`is_container`), never a name.
    Backends subclass this Protocol, so the members with a body are shared defaults.
    """

    name: ClassVar[str]
    # Sandboxes are containers of an engine: isolated enough for a student's script (`lab grade`),
    # started from images, able to stop and resume, with the answers folder bind-mounted from the
    # host. False for a backend whose "sandbox" is this host (a cgroup on a Killercoda VM).
    is_container: ClassVar[bool] = True

    @staticmethod
    def preload() -> None:
        """Import what talking to the engine needs (the warm server pays it once)."""

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

    def put_bytes(self, machine: Machine, data: bytes, dest: str, mode: int = 0o644) -> None:
        """Write `data` to the file `dest` in the machine (its folder is created)."""
        import shlex

        q = shlex.quote(dest)
        script = (f"mkdir -p \"$(dirname {q})\" && printf %s {shlex.quote(data.decode())} > {q} "
                  f"&& chmod {mode:o} {q}")
        result = self.run(machine, ["/bin/sh", "-c", script], timeout=30)
        if not result.succeeded:
            from labcoat.errors import EnvironmentProblem

            raise EnvironmentProblem(f"could not write {dest} in {machine.name}: {result.stderr.strip()[:200]}")

    def find(self, labels: Mapping[str, str], *, include_stopped: bool = True) -> list[Machine]: ...

    def remove(self, machine: Machine) -> None: ...

    def host_pid(self, machine: Machine) -> int | None: ...

    def remove_labelled(self, labels: Mapping[str, str], *, patient: bool = True, pause: float = 0.3,
                        each: Callable[[list[Machine]], Any] | None = None) -> int:
        """Remove every machine carrying these labels, and look again: an interrupted start may still be
        creating one nobody got a handle for. Patient: up to 10 looks, done after 2 quiet ones in a row;
        else 2 looks, done after 1. `each` removes a batch instead of `remove` (e.g. to also forget what
        the host keeps about them). Returns how many were found and removed."""
        import time

        quiet = removed = 0
        for _ in range(10 if patient else 2):
            found = self.find(labels)
            if found:
                if each is not None:
                    each(found)
                else:
                    for machine in found:
                        self.remove(machine)
                removed += len(found)
            quiet = 0 if found else quiet + 1
            if quiet >= (2 if patient else 1):
                break
            time.sleep(pause)
        return removed

    # ------------------------------------------------------------------ lifecycle beyond start/remove

    def resume(self, machine: Machine, timeout: float = 60) -> Machine:
        """Start a stopped machine again as it is (files, labels, limits kept); the running Machine."""
        raise NotImplementedError(f"the {self.name} backend cannot resume a stopped sandbox")

    def freeze(self, machine: Machine) -> None:
        """Stop every process of the machine where it is (cgroup freezer), until `thaw`."""
        raise NotImplementedError(f"the {self.name} backend cannot freeze a sandbox")

    def thaw(self, machine: Machine) -> None:
        """Let a frozen machine's processes run again."""
        raise NotImplementedError(f"the {self.name} backend cannot freeze a sandbox")

    def changed_files(self, machine: Machine) -> list[str]:
        """Paths that differ from the machine's image: added, changed or deleted (`docker diff`)."""
        raise NotImplementedError(f"the {self.name} backend cannot compare a sandbox with its image")

    def run_beside(self, machine: Machine, argv: Sequence[str], labels: Mapping[str, str]) -> None:
        """Run argv to its end in a throwaway helper in the machine's PID namespace (no network, no caps)."""
        raise NotImplementedError(f"the {self.name} backend has no helper sandboxes")

    # ------------------------------------------------------------------ what the machine is

    def inspect(self, machine: Machine, *, size: bool = False) -> dict[str, Any]:
        """The engine's record of the machine in the Docker Engine API's shape (State, HostConfig,
        Config, GraphDriver; SizeRw with `size`); {} where there is no engine."""
        return {}

    def limits(self, machine: Machine) -> dict[str, Any]:
        """Memory limits as they are enforced, and the cgroup version (`lab info`)."""
        from labcoat.cgroup_host import read_sandbox_cgroup

        snap = read_sandbox_cgroup(self, machine)
        swap = None if snap.limit is None or snap.swap_limit is None else snap.limit + snap.swap_limit
        return {"memory_limit": snap.limit, "memory_swap_limit": swap, "cgroup_version": snap.version}

    def cgroup_location(self, machine: Machine) -> tuple[Path, Path | None]:
        """The machine's memory cgroup directory on the host, and its PSI file (None where there is none)."""
        from labcoat import cgroup
        from labcoat.errors import EnvironmentProblem

        pid = self.host_pid(machine)
        if pid is None:
            raise EnvironmentProblem(f"{machine.name} is not running, so its cgroup cannot be read")
        directory = cgroup.host_cgroup_dir(pid)
        if directory is None:
            raise EnvironmentProblem(f"cannot find the memory cgroup of {machine.name} on this host")
        return Path(directory), (Path(p) if (p := cgroup.host_psi_path(pid)) else None)

    @property
    def supports(self) -> Mapping[str, bool]:
        """What this engine's cgroups can enforce (CpuShares, BlkioWeight, ...); {}: unknown."""
        return {}

    # ------------------------------------------------------------------ images, engine, shell

    def ensure_image(self, image_id: str, image: Image | None, image_dir: Path | None,
                     progress: Callable[[str, float | None], None] | None = None) -> str:
        """The tag to start `image_id`'s sandboxes from, built when missing ("" where there are no images)."""
        ...

    def image_id(self, tag: str) -> str | None:
        """The engine's id of this image, or None when it has none."""
        return None

    def save_image(self, tag: str) -> Iterator[bytes]:
        """The image as `docker save` writes it (a tar stream, in chunks), e.g. for a Killercoda export."""
        from labcoat.errors import EnvironmentProblem

        raise EnvironmentProblem(f"this backend keeps no images to save ({tag})",
                                 hint="export with a container engine (--backend docker), or pass --no-image")

    def has_image(self, tag: str) -> bool:
        """Whether the engine holds this image tag."""
        return False

    def engine_info(self) -> dict[str, Any] | None:
        """For `lab doctor`: the engine's version and facts (Version, ApiVersion, CgroupDriver,
        CgroupVersion, MemTotal, NCPU, ...); None where there is no engine. Raises EnvironmentProblem
        when the engine cannot be reached."""
        return None

    def api_endpoint(self) -> str | None:
        """Where the engine's Docker-compatible API listens (unix:///..., tcp://...), for the grading
        proxy of parts whose task is the docker CLI; None where there is none."""
        return None

    def host_env(self) -> dict[str, str]:
        """Environment for a learner's commands on the host (a part that `runs_on: host`), so that their
        `docker` reaches this backend's engine: DOCKER_HOST where it is not the default; {} otherwise."""
        return {}

    def shell_command(self, machine: Machine, *, user: str | None = None) -> tuple[list[str], dict[str, str]]:
        """The argv and environment of an interactive login shell in the machine (`lab shell`)."""
        ...

    # ------------------------------------------------------------------ containers the learner makes

    def inspect_named(self, name: str) -> dict[str, Any] | None:
        """The engine's record of a container the learner created by this name; None when there is none."""
        return None

    def remove_named(self, names: Sequence[str]) -> list[str]:
        """Remove the learner's containers with these names; the names that existed."""
        return []


def run_shell(backend: Backend, machine: Machine, script: str, **kwargs: Any) -> CommandResult:
    """Run a shell script inside the machine with /bin/sh -c."""
    return backend.run(machine, ["/bin/sh", "-c", script], **kwargs)
