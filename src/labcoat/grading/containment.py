"""Containment of an untrusted script in its sandbox: run it with limits, stop what it leaves, judge what it changed.

Scripts run only inside their sandbox (never on the host): copied in, run under bash from /root with
a wall-clock timeout and a cap on output, the sandbox's writable layer watched from the host. After it,
what it left running is stopped (frozen first, so a fork bomb cannot outrun the kill), the sandbox must
still run commands, and the system files the checks rely on must be those of the image.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labcoat.errors import InfrastructureFailure, LabError
from labcoat.grading.limits import Limits
from labcoat.grading.results import ScriptRun
from labcoat.grading.submission import script_name

if TYPE_CHECKING:
    from labcoat.backends.base import Backend, Machine
    from labcoat.content.models import Part

SCRIPT_DIR = "/opt/labcoat-submission"

# The student's script runs under bash from /root; its stdout and stderr together pass through
# `head -c`, so an endless writer is stopped in the sandbox (SIGPIPE) instead of flooding the grader.
# stdbuf -o0: head passes on what it read at once, so output written before a timeout is kept.
WRAPPER = ('set -o pipefail; cd /root || exit 97; sb=; command -v stdbuf >/dev/null && sb="stdbuf -o0"; '
           'bash "$1" </dev/null 2>&1 | $sb head -c "$2"')


def _starttime(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[-1].split()
    return int(fields[19]) if len(fields) > 19 else None


def _ns_pid(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                return int(line.split()[-1])
    except (OSError, ValueError):
        return None
    return None


def sandbox_processes(backend: Backend, machine: Machine) -> dict[int, int]:
    """Host PID -> start time of every process in the sandbox, read from its cgroup on the host."""
    from labcoat import cgroup

    pid = backend.host_pid(machine)
    try:
        directory = cgroup.host_cgroup_dir(pid) if pid else None
    except OSError:
        directory = None  # the container's init is gone (it is stopping)
    if not directory:
        raise InfrastructureFailure(f"cannot find the cgroup of {machine.name} on this host")
    try:
        text = (Path(directory) / "cgroup.procs").read_text()
    except OSError as exc:
        raise InfrastructureFailure(f"cannot list the processes of {machine.name}: {exc}") from None
    out = {}
    for word in text.split():
        start = _starttime(int(word))
        if start is not None:
            out[int(word)] = start
    return out


def host_kill(pids: list[int]) -> None:
    """SIGKILL these host PIDs (PermissionError when this grader may not signal them)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _kill_from_helper(backend: Backend, machine: Machine, pids: list[int], labels: dict[str, str]) -> None:
    """Kill processes through a short-lived container in the sandbox's PID namespace.

    For a grader that may use Docker but not signal root's processes on the host. The
    helper gets no network and no capabilities: the same uid needs none to send a signal.
    """
    ns = [str(n) for p in pids if (n := _ns_pid(p))]
    if not ns:
        return
    with contextlib.suppress(Exception):  # "no such process" for one that ended meanwhile; survivors are counted next
        backend.run_beside(machine, ["kill", "-9", *ns], labels)


def stop_leftovers(backend: Backend, machine: Machine, baseline: dict[int, int], labels: dict[str, str],
                   freeze: bool = True) -> int:
    """Stop every process in the sandbox that was not there at `baseline`; return how many.

    The sandbox is frozen first (docker pause), so a fork bomb cannot outrun the kill;
    the processes die when it thaws. `freeze=False` while another thread may start a
    `docker exec` in the sandbox (a provocation's runner): an exec whose process joins the
    cgroup while it is frozen stays frozen, and the engine then queues the thaw behind that
    exec, for good (seen here once: the grader hung until the freezer was thawed by hand).
    """
    def new_ones() -> list[int]:
        return [p for p, start in sandbox_processes(backend, machine).items() if baseline.get(p) != start]

    if not new_ones():
        return 0
    frozen = False
    for attempt_no in range(3 if freeze else 0):
        try:
            backend.freeze(machine)
            frozen = True
            break
        except Exception:  # noqa: BLE001 - e.g. "unable to freeze" under heavy load: try again, then without
            time.sleep(0.2 * (attempt_no + 1))
    victims: list[int] = []
    try:
        # Frozen: one round kills everything. Not frozen (the freezer gave up): kill round after round
        # until nothing new is left; the pids limit bounds how many a fork bomb can make in between.
        for _ in range(1 if frozen else 50):
            batch = [p for p in new_ones() if p not in victims] if not frozen else new_ones()
            if not batch:
                break
            victims += batch
            try:
                host_kill(batch)
            except PermissionError:
                _kill_from_helper(backend, machine, batch, labels)
            if not frozen:
                time.sleep(0.05)
    finally:
        if frozen:
            with contextlib.suppress(Exception):
                backend.thaw(machine)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        alive = [p for p in victims if _starttime(p) is not None and baseline.get(p) != _starttime(p)]
        if not alive:
            break
        time.sleep(0.05)
    else:
        raise InfrastructureFailure(f"{len(alive)} process(es) left by a script in {machine.name} would not stop")
    return len(victims)


def _stopped(backend: Backend, machine: Machine) -> str | None:
    """None while the container runs, else how it ended."""
    try:
        state = backend.inspect(machine).get("State", {})
    except Exception as exc:  # noqa: BLE001 - docker.errors.NotFound and friends
        return f"the container is gone ({type(exc).__name__})"
    if not state.get("Running") or not state.get("Pid"):
        return f"the container stopped (exit code {state.get('ExitCode')})"
    return None


def settle(backend: Backend, machine: Machine, baseline: dict[int, int], labels: dict[str, str],
           health: bool = True) -> tuple[int, str | None]:
    """After a script: stop what it left running; (how many, None or why the sandbox is unusable now).

    `health=False`: the caller probes `healthy` itself (beside other work).
    """
    gone = _stopped(backend, machine)
    if gone:
        return 0, gone
    try:
        killed = stop_leftovers(backend, machine, baseline, labels)
    except InfrastructureFailure:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # it may have been on its way out (its init had just ended)
            gone = _stopped(backend, machine)
            if gone:
                return 0, gone
            time.sleep(0.1)
        raise
    return killed, healthy(backend, machine) if health else None


# Where the tools the checks run inside a sandbox live: a script that changes them could make a
# check read what it wants (a fake `ps`), so a part whose script touched them is not judged.
PROTECTED = ("/bin", "/sbin", "/usr", "/lib", "/lib32", "/lib64", "/libx32", "/etc/ld.so.preload",
             "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/ld.so.cache")


def system_changes(backend: Backend, machine: Machine) -> set[str]:
    """Paths under PROTECTED that differ from the image (docker diff: added, changed, deleted)."""
    try:
        changes = backend.changed_files(machine)
    except Exception as exc:  # noqa: BLE001 - the engine's problem, not the student's
        raise InfrastructureFailure(f"cannot compare {machine.name} with its image: {exc}") from None
    return {c for c in changes if any(c == p or c.startswith(p + "/") for p in PROTECTED)}


def leaves(paths: set[str]) -> list[str]:
    """The changed files themselves, without the folders that changed because of them."""
    return sorted(p for p in paths if not any(q.startswith(p + "/") for q in paths))


def healthy(backend: Backend, machine: Machine) -> str | None:
    """None when the sandbox still runs commands, else what is wrong with it."""
    gone = _stopped(backend, machine)
    if gone:
        return gone
    try:
        result = backend.run(machine, ["/bin/sh", "-c", "cat /proc/1/comm >/dev/null"], timeout=15)
    except LabError as exc:
        return str(exc)
    if not result.succeeded:
        return f"a shell no longer runs in it (exit {result.exit_status}: {(result.stderr or result.stdout).strip()[:120]})"
    return None


# ----------------------------------------------------------------------------- running a script


def _guarded(fn: Callable[[], Any], seconds: float, what: str) -> Any:
    """Run fn in a thread; InfrastructureFailure when it has not returned after `seconds`."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True, name="labcoat-grade-exec")
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise InfrastructureFailure(f"{what} did not return within {seconds:g} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


class DiskWatch:
    """Measure a sandbox's writable layer from the host while a script runs; stop the script past `limit`.

    `also`: labels of more containers whose layers count against the same limit (those a host
    part's `docker` started through the proxy); past the limit they are removed.
    """

    INTERVAL = 0.25

    def __init__(self, backend: Backend, machine: Machine, limit: int | None, labels: dict[str, str],
                 also: dict[str, str] | None = None) -> None:
        self.backend, self.machine, self.limit, self.labels, self.also = backend, machine, limit, labels, also
        self.exceeded: int | None = None  # bytes found when the limit was passed
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> DiskWatch:
        if self.limit:
            self.baseline = sandbox_processes(self.backend, self.machine)
            self._thread = threading.Thread(target=self._watch, daemon=True, name="labcoat-disk-watch")
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(30)

    def _watch(self) -> None:
        from labcoat.grading.capacity import layer_bytes

        while not self._stop.wait(self.INTERVAL):
            used = layer_bytes(self.backend, self.machine)
            if used is None:
                continue
            others = self._others()
            used += sum(layer_bytes(self.backend, m) or 0 for m in others)
            self.peak = max(self.peak, used)
            if self.limit and used > self.limit:
                self.exceeded = used
                with contextlib.suppress(LabError):  # the script's processes: its exec then returns
                    stop_leftovers(self.backend, self.machine, self.baseline, self.labels)
                for other in others:  # what they run writes on: gone (the grading removes them anyway)
                    with contextlib.suppress(Exception):
                        self.backend.remove(other)
                return

    def _others(self) -> list[Machine]:
        if not self.also:
            return []
        try:
            return [m for m in self.backend.find(self.also) if m.id != self.machine.id]  # stopped ones keep their layers
        except Exception:  # noqa: BLE001 - the engine did not answer this time: the next round asks again
            return []


def run_script_in_sandbox(backend: Backend, machine: Machine, part: Part, text: str, limits: Limits,
                          disk: int | None = None, labels: dict[str, str] | None = None,
                          also: dict[str, str] | None = None) -> ScriptRun:
    """Copy the script into the sandbox and run it there with the limits (never on the host).

    `disk`: the sandbox's disk limit in bytes; the writable layer is watched while the script
    runs and the script is stopped when it grows past it (`ScriptRun.disk_exceeded`); `also`: the
    labels of more containers whose layers count (DiskWatch).
    """
    from labcoat.grading.capacity import mib

    run = ScriptRun(file=script_name(part), present=True, ran=True)
    path = f"{SCRIPT_DIR}/{script_name(part)}"
    backend.put_bytes(machine, text.encode(), path, 0o755)
    env = {"LAB_PART": part.id, "HOME": "/root"}
    began = time.monotonic()
    with DiskWatch(backend, machine, disk, labels or {}, also) as watch:
        result = _guarded(
            lambda: backend.run(machine, ["bash", "-c", WRAPPER, "labcoat-grade", path, str(limits.max_output)],
                                timeout=limits.script_timeout, env=env, max_output=limits.max_output),
            limits.script_timeout + 60, f"{run.file} in {machine.name}")
    run.duration = time.monotonic() - began
    if watch.exceeded is not None:
        run.disk_exceeded = True
        run.note = (f"stopped after {run.duration:.1f} s: it wrote {mib(watch.exceeded)} to its sandbox's disk, more "
                    f"than the sandbox's disk limit of {mib(disk)}")
    run.exit_status = result.exit_status
    run.timed_out = bool(result.timed_out) or (result.exit_status in (124, 137)
                                               and run.duration >= limits.script_timeout)
    output = (result.stdout or "") + (result.stderr or "")
    run.output_bytes = len(output.encode())
    run.truncated = bool(result.truncated) or run.output_bytes >= limits.max_output
    run.output = output[-limits.max_output:]
    if run.disk_exceeded:
        pass
    elif run.timed_out:
        run.note = f"stopped after {limits.script_timeout:g} s (the time limit per script)"
    elif "File size limit exceeded" in output or result.exit_status == 128 + 25:
        run.note = f"a file reached the disk limit per file ({mib(disk)}): it was cut there (SIGXFSZ)"
    elif run.truncated:
        run.note = f"output cut at {limits.max_output} bytes"
    return run


# ----------------------------------------------------------------------------- the steps around a script


class Guard:
    """Containment of one script in its sandbox: the named steps before it (BEFORE_SCRIPT) and after it
    (AFTER_SCRIPT_STEPS), run in order; the first that finds a problem says why, and the rest are skipped.

    The image comparison runs beside the health probe (the engine answers both at once): a step
    starts it (`look at the system files`), a later one reads it.
    """

    def __init__(self, backend: Backend, machine: Machine, part: Part, labels: dict[str, str]) -> None:
        self.backend, self.machine, self.part, self.labels = backend, machine, part, labels
        self.file = script_name(part)
        self.baseline: dict[int, int] = {}  # host PID -> start time, before the script
        self.system_before: set[str] = set()
        self.killed = 0  # processes the last `after()` stopped
        self._pool: ThreadPoolExecutor | None = None
        self._diff: Future[set[str]] | None = None

    def _run(self, steps: tuple[Step, ...]) -> str | None:
        with ThreadPoolExecutor(1, thread_name_prefix="labcoat-grade-diff") as self._pool:
            self._diff = None
            for _name, step in steps:
                why = step(self)
                if why:
                    if self._diff is not None:
                        self._diff.cancel()
                    return why
        return None

    def before(self) -> None:
        """Make ready for the script; InfrastructureFailure when the sandbox is not usable (not the student's fault)."""
        why = self._run(BEFORE_SCRIPT)
        if why:
            raise InfrastructureFailure(f"the sandbox for {self.part.id} is not usable before its script ran: {why}")

    def after(self) -> str | None:
        """Stop what the script left; why the part cannot be judged (None: it can). May run more than once."""
        self.killed = 0
        return self._run(AFTER_SCRIPT_STEPS)


Step = tuple[str, Callable[[Guard], str | None]]


def _look_at_system_files(g: Guard) -> None:
    assert g._pool is not None
    g._diff = g._pool.submit(system_changes, g.backend, g.machine)


def _sandbox_runs_commands(g: Guard) -> str | None:
    return healthy(g.backend, g.machine)


def _clear_answers(g: Guard) -> None:
    from labcoat.runner.attempt import clear_answers

    clear_answers(g.backend, g.machine, g.part)


def _note_processes(g: Guard) -> None:
    g.baseline = sandbox_processes(g.backend, g.machine)


def _note_system_files(g: Guard) -> None:
    assert g._diff is not None
    g.system_before = g._diff.result()


def _stop_what_it_left(g: Guard) -> str | None:
    g.killed, broken = settle(g.backend, g.machine, g.baseline, g.labels, health=False)
    return f"{g.file} left its sandbox unusable: {broken}" if broken else None


def _still_runs_commands(g: Guard) -> str | None:
    broken = healthy(g.backend, g.machine)
    return f"{g.file} left its sandbox unusable: {broken}" if broken else None


def _system_files_unchanged(g: Guard) -> str | None:
    assert g._diff is not None
    changed = leaves(g._diff.result() - g.system_before)
    if changed:
        return (f"{g.file} changed the sandbox's system files ({', '.join(changed[:5])}); the checks "
                "use the sandbox's own tools, so nothing in it can be trusted")
    return None


BEFORE_SCRIPT: tuple[Step, ...] = (
    ("look at the system files (meanwhile)", _look_at_system_files),
    ("the sandbox runs commands", _sandbox_runs_commands),
    ("no answers recorded yet", _clear_answers),
    ("note the processes running", _note_processes),
    ("note the system files", _note_system_files),
)
AFTER_SCRIPT_STEPS: tuple[Step, ...] = (
    ("stop what the script left running", _stop_what_it_left),
    ("look at the system files (meanwhile)", _look_at_system_files),
    ("the sandbox still runs commands", _still_runs_commands),
    ("the system files are the image's", _system_files_unchanged),
)
