"""A learner's lab: its sandbox(es). Start them, find them again, prepare parts, remove them.

A lab runs in one main sandbox; a part that provokes the kernel (OOM kills, pressure)
may declare a sandbox of its own, so it cannot disturb the other parts' state.

The truth about which sandboxes exist is the backend's labels; the small JSON files
under the state folder only remember what labels cannot (is preparation finished).
So a lost state file never orphans a container, and a `lab start` killed at any point
leaves labelled containers that the next `lab start` or `lab stop` removes.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labcoat.backends.base import Backend, Machine, MachineSpec
from labcoat.errors import NotStarted, UsageProblem
from labcoat.paths import state_dir
from labcoat.runner.lifecycle import Lifecycle, parallel, prepare_session

if TYPE_CHECKING:
    from labcoat.content.catalog import Catalog
    from labcoat.content.models import Lab, Part, SandboxSpec

Progress = Callable[[str, float | None], None]

L_MANAGED = "labcoat.managed"
L_LAB = "labcoat.lab"
L_PART = "labcoat.part"
L_OWNER = "labcoat.owner"
L_SEED = "labcoat.seed"
L_KIND = "labcoat.kind"
L_SESSION = "labcoat.session"


def owner() -> str:
    """Who a sandbox belongs to: $LABCOAT_OWNER, else user name and uid (several users may share a host)."""
    env = os.environ.get("LABCOAT_OWNER")
    if env:
        return env
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "user"
    return f"{name}-{os.getuid()}"


def labels_for(kind: str, lab_id: str = "", seed: str = "", **extra: str) -> dict[str, str]:
    """The labels every sandbox of this owner and kind carries."""
    labels = {L_MANAGED: "1", L_OWNER: owner(), L_KIND: kind}
    if lab_id:
        labels[L_LAB] = lab_id
    if seed:
        labels[L_SEED] = seed
    labels.update({f"labcoat.{k}": v for k, v in extra.items()})
    return labels


ANSWERS_DIR = "/root/answers"
_SESSION_FILE = "session.json"


def answers_root() -> Path:
    return state_dir() / "answers"


def answers_folder(session_id: str, part_id: str = "") -> Path:
    """The host folder mounted as a lab sandbox's /root/answers: the answers survive the container."""
    return answers_root() / session_id / (part_id or "main")


def forget_answers(session_id: str, part_id: str) -> None:
    """Remove one sandbox's answers folder, and the session's folder once no sandbox is left in it."""
    shutil.rmtree(answers_folder(session_id, part_id), ignore_errors=True)
    folder = answers_root() / session_id
    with contextlib.suppress(OSError):
        if {p.name for p in folder.iterdir()} <= {_SESSION_FILE}:
            shutil.rmtree(folder, ignore_errors=True)


def orphaned_answers(backend: Backend, lab_id: str) -> dict[str, Any] | None:
    """The newest session of `lab_id` whose answers are on the host but whose sandboxes are all gone.

    That happens only when they were removed behind labcoat's back (`docker rm`, `docker
    system prune` after an engine restart): labcoat's own removals (`lab stop`, `lab reset`,
    `lab start --fresh`) remove the answers with them. Returns its session.json.
    """
    found = []
    with contextlib.suppress(OSError):
        for meta in answers_root().glob(f"*/{_SESSION_FILE}"):
            with contextlib.suppress(OSError, ValueError):
                data = json.loads(meta.read_text())
                if data.get("lab") == lab_id and data.get("owner") == owner():
                    found.append((meta.stat().st_mtime, data))
    for _, data in sorted(found, key=lambda item: item[0], reverse=True):
        session = str(data.get("session"))
        if backend.find({L_SESSION: session, L_OWNER: owner()}):
            continue
        if any(p.is_file() for p in (answers_root() / session).glob("*/*")):
            return data
        shutil.rmtree(answers_root() / session, ignore_errors=True)  # a start killed before any answer
    return None


def _sandbox_file(machine_id: str) -> Path:
    folder = state_dir() / "sandboxes"
    folder.mkdir(exist_ok=True)
    return folder / f"{machine_id[:32]}.json"


@dataclass
class Sandbox:
    """One running container (or local cgroup) of a lab."""

    backend: Backend
    machine: Machine
    lab_id: str
    # Containers the learner's docker commands created, by the name they asked for (-> container id),
    # when a grading proxy created them; None: such names are looked up on the engine as they are.
    learner_names: dict[str, str] | None = None

    @property
    def seed(self) -> int:
        return int(self.machine.label(L_SEED, "0") or 0)

    @property
    def part_id(self) -> str:
        """The part this sandbox belongs to, or "" for the lab's main sandbox."""
        return self.machine.label(L_PART)

    @property
    def session_id(self) -> str:
        return self.machine.label(L_SESSION)

    @property
    def is_ready(self) -> bool:
        """Preparation finished (recorded on the host, where the learner cannot forge it)."""
        path = _sandbox_file(self.machine.id)
        return path.exists() and bool(json.loads(path.read_text()).get("ready", False))

    def mark_ready(self, info: dict[str, Any]) -> None:
        _sandbox_file(self.machine.id).write_text(json.dumps({"ready": True, "since": time.time(), **info}))

    def forget(self, keep_answers: bool = False) -> None:
        """Drop what the host keeps about this sandbox: removed by labcoat, its answers go with it."""
        _sandbox_file(self.machine.id).unlink(missing_ok=True)
        if not keep_answers and self.session_id and self.machine.label(L_KIND) == "lab":
            forget_answers(self.session_id, self.part_id)


@dataclass
class LabSession:
    """A lab's sandboxes: the main one and those of parts that have their own."""

    lab_id: str
    main: Sandbox
    parts: dict[str, Sandbox] = field(default_factory=dict)
    # Set by `start_lab` when it brought stopped sandboxes back (an engine restart):
    # the parts whose preparation ran again (their services restarted, with new PIDs).
    resumed: list[str] | None = None
    # Set by `start_lab` when the sandboxes had been removed behind its back and it started new
    # ones with the old seed and the answers kept on the host.
    restored: bool = False

    def for_part(self, part_id: str | None) -> Sandbox:
        """The sandbox a part's work and checks happen in."""
        if part_id and part_id in self.parts:
            return self.parts[part_id]
        return self.main

    @property
    def all(self) -> list[Sandbox]:
        return [self.main, *self.parts.values()]


def machine_spec(spec: SandboxSpec, image_tag: str, name: str | None, seed: str) -> MachineSpec:
    """Turn a content SandboxSpec into what a backend starts."""
    return MachineSpec(
        image=image_tag,
        memory=spec.memory_bytes,
        name=name,
        pids_limit=spec.pids_limit,
        cpus=spec.cpus,
        network=spec.network,
        cap_add=spec.cap_add,
        env={"LAB_SEED": seed},
        swap=spec.swap_bytes,
        disk=spec.disk_bytes,
        tmpfs=spec.tmpfs_bytes,
        read_only=spec.read_only_root,
        cpu_shares=spec.cpu_shares,
        io_weight=spec.io_weight,
    )


def find_lab_sandboxes(backend: Backend, lab_id: str = "", kind: str = "lab") -> list[Sandbox]:
    """This owner's sandboxes of one kind (and lab), running or not."""
    machines = backend.find(labels_for(kind, lab_id))
    return [Sandbox(backend, m, m.label(L_LAB)) for m in machines]


class SandboxesStopped(NotStarted):
    """The lab's prepared sandboxes exist but are stopped (the Docker engine restarted): resume them."""


def stopped_sessions(backend: Backend, lab_id: str = "") -> list[LabSession]:
    """Prepared sessions of this owner whose main sandbox is stopped, newest first (what an engine restart leaves).

    Only sessions that are complete (every part that has a sandbox of its own has it, ready)
    count: anything else cannot be resumed and is started afresh.
    """
    every = [s for s in find_lab_sandboxes(backend, lab_id) if s.is_ready]
    out = []
    for main in [s for s in every if not s.part_id and not s.machine.is_running]:
        parts = {s.part_id: s for s in every if s.part_id and s.session_id == main.session_id}
        out.append(LabSession(main.lab_id, main, parts))
    return sorted(out, key=lambda session: _ready_since(session.main), reverse=True)


def _ready_since(sandbox: Sandbox) -> float:
    try:
        return float(json.loads(_sandbox_file(sandbox.machine.id).read_text()).get("since", 0))
    except (OSError, ValueError):
        return 0.0


def _stopped_problem(backend: Backend, session: LabSession) -> SandboxesStopped:
    """What `lab check` (and every command that needs a running lab) says about stopped sandboxes."""
    when = ""
    with contextlib.suppress(Exception):
        state = backend.inspect(session.main.machine).get("State", {})
        finished, code = str(state.get("FinishedAt") or ""), state.get("ExitCode")
        if finished and not finished.startswith("0001"):
            when = f" since {finished[11:16]} UTC" + (f" (exit {code})" if code is not None else "")
    count = len(session.all)
    return SandboxesStopped(
        f"the Docker engine restarted (or stopped them): your {count} sandbox(es) of lab {session.lab_id} are "
        f"stopped{when}",
        hint=f"run `lab start {session.lab_id}` to resume them — your answers are kept",
    )


def current_session(backend: Backend, lab_id: str = "") -> LabSession:
    """The running, prepared lab of this owner, or NotStarted saying what to run."""
    sandboxes = find_lab_sandboxes(backend, lab_id)
    found = [s for s in sandboxes if s.machine.is_running]
    mains = [s for s in found if not s.part_id and s.is_ready]
    if mains:
        main = mains[0]
        parts = {s.part_id: s for s in found if s.part_id and s.session_id == main.session_id and s.is_ready}
        _watch_disk(backend)
        return LabSession(main.lab_id, main, parts)
    if found:
        raise NotStarted(f"the sandbox of lab {found[0].lab_id} is not ready (its start was interrupted)",
                         hint=f"run `lab start {found[0].lab_id}` to start it afresh")
    stopped = stopped_sessions(backend, lab_id) if sandboxes else []
    if stopped:
        raise _stopped_problem(backend, stopped[0])
    if lab_id:
        raise NotStarted(f"lab {lab_id} is not running", hint=f"run `lab start {lab_id}` first")
    raise NotStarted("no lab is running", hint="run `lab start LAB` first (`lab list` shows the labs)")


def current_sandbox(backend: Backend, part_id: str | None = None) -> Sandbox:
    """The sandbox where `part_id` (or the lab in general) runs."""
    return current_session(backend).for_part(part_id)


def remove_sandboxes(backend: Backend, sandboxes: list[Sandbox], *, keep_answers: bool = False) -> list[str]:
    """Remove these sandboxes (in parallel: each removal waits on the engine) and forget them."""

    def remove(sb: Sandbox) -> str:
        backend.remove(sb.machine)
        sb.forget(keep_answers)
        return sb.machine.name

    return parallel([lambda sb=sb: remove(sb) for sb in sandboxes]) if sandboxes else []


def remove_learner_containers(backend: Backend, lab: Lab, part: Part | None = None) -> list[str]:
    """Remove containers the learner was asked to create on the host (engine backends only)."""
    return backend.remove_named([name for p in ([part] if part else lab.parts) for name in p.learner_containers])


def start_lab(
    catalog: Catalog,
    backend: Backend,
    lab: Lab,
    *,
    progress: Progress | None = None,
    fresh: bool = False,
) -> tuple[LabSession, bool]:
    """Start (or reuse) this owner's sandboxes for `lab`; return the session and whether it is new.

    Sandboxes of other labs, and any not-ready one (an interrupted start), are removed
    first. On any failure or interruption, whatever was started is removed before re-raising.
    """
    say = progress or (lambda msg, frac: None)
    if not fresh:
        try:
            session = current_session(backend, lab.id)
            if session.lab_id == lab.id and all(p.id in session.parts for p in lab.parts if p.sandbox):
                return session, False
        except SandboxesStopped:
            resumed = resume_lab(catalog, backend, lab, progress=say)
            if resumed is not None:
                _watch_disk(backend)
                return resumed, False
        except NotStarted:
            pass
    stale = find_lab_sandboxes(backend)
    if stale:
        say(f"removing {len(stale)} old sandbox(es)", None)
        remove_sandboxes(backend, stale)

    image_tag = ensure_lab_image(catalog, backend, lab.sandbox.image, say)
    seed = str(secrets.randbelow(2**31))
    session_id = secrets.token_hex(4)
    lost = orphaned_answers(backend, lab.id) if not fresh and backend.is_container else None
    if lost:  # the same seed and the same answers folders: the learner's work comes back
        say("restoring your answers", None)
        seed, session_id = str(lost["seed"]), str(lost["session"])
    # Kept once prepared; on any failure or Ctrl-C, every sandbox with the session's label goes (a
    # restore that failed keeps the answers it was restoring, for the next try).
    with Lifecycle(backend, {L_SESSION: session_id, L_OWNER: owner()}, keep="on_success",
                   forget=lambda m: Sandbox(backend, m, lab.id).forget(keep_answers=bool(lost))) as life:
        say("starting the sandboxes", None)
        specs = [("", lab.sandbox, image_tag)] + [
            (p.id, p.sandbox, ensure_lab_image(catalog, backend, p.sandbox.image, say)) for p in lab.parts if p.sandbox
        ]
        # Containers start and parts are prepared in parallel, one thread per sandbox: the
        # sandboxes are independent, and most of the time is spent waiting on the engine.
        boxes = parallel([lambda s=s: _start_one(life, lab, s[1], s[2], seed, session_id, s[0]) for s in specs])
        session = LabSession(lab.id, boxes[0], {sb.part_id: sb for sb in boxes[1:]})
        say("preparing the parts", None)
        prepare_session(catalog, session, lab.parts)
        for sb in boxes:
            sb.mark_ready({"lab": lab.id, "image": image_tag, "part": sb.part_id})
    session.restored = bool(lost)
    _watch_disk(backend)
    say("ready", 1.0)
    return session, True


def _watch_disk(backend: Backend) -> None:
    """Make sure this user's disk watcher runs (runner/diskwatch.py: the bound on the sandboxes' disk)."""
    from labcoat.runner.diskwatch import ensure_running

    with contextlib.suppress(OSError):  # cannot start it: `lab status` says the disk is not watched
        ensure_running(backend)


def restarts_processes(catalog: Catalog, part: Part) -> bool:
    """Whether the part's preparation starts processes (hogs, background commands): a stopped sandbox lost them.

    Only such preparations run again when a sandbox is resumed. One that only shapes files
    is left alone: the files survived, and running it again could remove the learner's own
    work (a clean-slate step deletes what the part asks the learner to create).
    """
    for scenario_id in part.prepare:
        for step in catalog.scenario(scenario_id).steps:
            if step.hog is not None or (step.run is not None and step.run.background):
                return True
    return False


def resume_lab(catalog: Catalog, backend: Backend, lab: Lab, *, progress: Progress | None = None) -> LabSession | None:
    """Start this owner's stopped sandboxes of `lab` again (after an engine restart), keeping everything in them.

    The containers are started as they are (answers, files, seed and labels kept); the
    parts whose preparation starts processes are prepared again (the same seed draws the
    same names and sizes; the PIDs are new). Sandboxes of other sessions are removed, as
    `lab start` always does. None when there is no complete stopped session to resume.
    """
    say = progress or (lambda msg, frac: None)
    stopped = stopped_sessions(backend, lab.id)
    if not stopped or not backend.is_container:
        return None
    session = stopped[0]
    if not all(p.id in session.parts for p in lab.parts if p.sandbox):
        return None
    keep = {sb.machine.id for sb in session.all}
    others = [s for s in find_lab_sandboxes(backend) if s.machine.id not in keep]
    if others:
        say(f"removing {len(others)} old sandbox(es)", None)
        remove_sandboxes(backend, others)
    say("resuming the stopped sandboxes", None)
    for sb in session.all:
        sb.machine = backend.resume(sb.machine)
    from labcoat.runner.steps import RUN_DIR, prepare_part

    redo = [p for p in lab.parts if restarts_processes(catalog, p)]
    say("starting the parts' services again", None)

    def prepare_in(sandbox: Sandbox) -> None:
        # The old hogs' logs say "holding": a new hog's wait would believe them.
        backend.run(sandbox.machine, ["rm", "-rf", RUN_DIR], timeout=15)
        for part in redo:
            if session.for_part(part.id) is sandbox:
                prepare_part(catalog, sandbox, part)

    parallel([lambda sb=sb: prepare_in(sb) for sb in session.all])
    for sb in session.all:
        before = {}
        with contextlib.suppress(OSError, ValueError):
            before = json.loads(_sandbox_file(sb.machine.id).read_text())
        before.pop("since", None)
        sb.mark_ready({**before, "resumed": time.time()})
    session.resumed = [p.id for p in redo]
    say("ready", 1.0)
    return session


def _start_one(life: Lifecycle, lab: Lab, spec: SandboxSpec, tag: str, seed: str, session_id: str,
               part_id: str) -> Sandbox:
    suffix = f"-{part_id}" if part_id else ""
    name = f"labcoat-{lab.id.replace('.', '-')}{suffix}-{owner()}-{session_id}"
    labels = labels_for("lab", lab.id, seed, session=session_id)
    if part_id:
        labels[L_PART] = part_id
    mspec = machine_spec(spec, tag, name, seed)
    if life.backend.is_container:  # the answers live on the host (docs/design.md, "Engine restarts")
        from dataclasses import replace

        folder = answers_folder(session_id, part_id)
        folder.mkdir(parents=True, exist_ok=True)
        meta = folder.parent / _SESSION_FILE
        if not meta.exists():
            meta.write_text(json.dumps({"lab": lab.id, "seed": seed, "session": session_id, "owner": owner(),
                                        "since": time.time()}))
        mspec = replace(mspec, mounts={str(folder): ANSWERS_DIR})
    machine = life.start(mspec, labels)
    return Sandbox(life.backend, machine, lab.id)


def restart_part(catalog: Catalog, session: LabSession, lab: Lab, part: Part) -> Sandbox:
    """Give a part with its own sandbox a brand-new one; others are prepared again in place."""
    from labcoat.runner.steps import prepare_part

    backend = session.main.backend
    remove_learner_containers(backend, lab, part)
    if part.id not in session.parts:
        prepare_part(catalog, session.main, part)
        return session.main
    old = session.parts[part.id]
    tag = ensure_lab_image(catalog, backend, part.sandbox.image, lambda m, f: None)  # type: ignore[union-attr]
    # The old one goes first: the new one takes its name (and starting over means starting over).
    remove_sandboxes(backend, [old])
    selector = {L_SESSION: session.main.session_id, L_OWNER: owner(), L_PART: part.id}
    with Lifecycle(backend, selector, keep="on_success", forget=lambda m: Sandbox(backend, m, lab.id).forget()) as life:
        new = _start_one(life, lab, part.sandbox, tag, str(old.seed), session.main.session_id, part.id)  # type: ignore[arg-type]
        prepare_part(catalog, new, part)
        new.mark_ready({"lab": lab.id, "part": part.id})
    session.parts[part.id] = new
    return new


def part_of(lab: Lab, part_id: str) -> Part:
    """The part of `lab` with this id, or a usage error listing the parts."""
    try:
        return lab.part(part_id)
    except KeyError:
        ids = ", ".join(p.id for p in lab.parts)
        raise UsageProblem(f"lab {lab.id} has no part {part_id!r}", hint=f"its parts: {ids}") from None


def ensure_lab_image(catalog: Catalog, backend: Backend, image_id: str, say: Progress) -> str:
    """The image tag to start from (built when missing); "" for a backend without images."""
    image = catalog.images.get(image_id)
    return backend.ensure_image(image_id, image, catalog.image_dir(image_id) if image else None, say)
