"""The sandboxes of one submission's grading: locked down, labelled, and removed by their labels (runner/lifecycle.py)."""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from labcoat.errors import UsageProblem
from labcoat.grading.limits import Limits, _pids, effective_cpus

if TYPE_CHECKING:
    from labcoat.backends.base import Backend, Machine, MachineSpec
    from labcoat.content.catalog import Catalog
    from labcoat.content.models import Lab, Part, SandboxSpec
    from labcoat.runner.lifecycle import Lifecycle
    from labcoat.runner.session import LabSession, Sandbox

KIND = "grade"
L_GRADER = "labcoat.grader"
L_STUDENT = "labcoat.student"


def grading_backend() -> Backend:
    """The container backend grading runs on ($LABCOAT_BACKEND, else the default; sandboxes keep no
    container log: see MachineSpec.keep_log)."""
    from labcoat.backends import DEFAULT_BACKEND, get_backend

    backend = get_backend(os.environ.get("LABCOAT_BACKEND") or DEFAULT_BACKEND)
    if not backend.is_container:  # a student's script never runs on the grading host itself
        raise UsageProblem(f"`lab grade` runs submissions in container sandboxes only, not with the {backend.name} "
                           f"backend", hint=f"use --backend {DEFAULT_BACKEND}")
    return backend


def grade_spec(spec: SandboxSpec, image_tag: str, seed: str, name: str, limits: Limits) -> MachineSpec:
    """A lab sandbox's MachineSpec, locked down for untrusted code."""
    from labcoat.runner.session import machine_spec

    base = machine_spec(spec, image_tag, name, seed)
    return replace(base, network=False, cap_drop=("ALL",), cap_add=tuple(spec.cap_add), no_new_privileges=True,
                   pids_limit=_pids(spec, limits), cpus=effective_cpus(spec, limits))


@dataclass
class GradeSession:
    """The sandboxes of one submission's grading and how to find them again by their labels."""

    backend: Backend
    catalog: Catalog
    lab: Lab
    owner: str
    session_id: str
    seed: str
    student: str
    limits: Limits
    session: LabSession | None = None
    replaced: int = 0
    life: Lifecycle = field(init=False, repr=False)

    def __post_init__(self) -> None:
        from labcoat.runner.lifecycle import Lifecycle
        from labcoat.runner.session import L_KIND, L_SESSION

        # Found and removed by these labels whatever happens (quietly: the sweep looks again).
        self.life = Lifecycle(self.backend, {L_SESSION: self.session_id, L_KIND: KIND}, quiet=True, patient=True,
                              pause=0.2)

    @property
    def started(self) -> list[Machine]:
        """Every sandbox this grading started (replaced and released ones too)."""
        return self.life.started

    def labels(self, part_id: str = "") -> dict[str, str]:
        from labcoat.runner.session import L_OWNER, labels_for, owner

        labels = labels_for(KIND, self.lab.id, self.seed, session=self.session_id)
        labels[L_OWNER] = self.owner
        labels[L_GRADER] = owner()
        labels[L_STUDENT] = self.student
        if part_id:
            labels["labcoat.part"] = part_id
        return labels

    def start_one(self, spec: SandboxSpec, part_id: str, tag: str | None = None) -> Sandbox:
        from labcoat.runner.session import Sandbox, ensure_lab_image

        tag = tag or ensure_lab_image(self.catalog, self.backend, spec.image, lambda m, f: None)
        suffix = f"-{part_id}" if part_id else ""
        again = f"-{self.replaced}" if self.replaced else ""  # a replacement never reuses a name
        name = f"labcoat-grade-{self.lab.id.replace('.', '-')}{suffix}-{self.session_id}{again}"
        machine = self.life.start(grade_spec(spec, tag, self.seed, name, self.limits), self.labels(part_id))
        return Sandbox(self.backend, machine, self.lab.id)

    def start(self, parts: list[Part], *, prepare: bool = True) -> LabSession:
        """The main sandbox and the own sandboxes of `parts` that have one, each part prepared.

        The containers start at the same time, one thread each (most of it is waiting on the
        engine); so are the parts prepared, one thread per sandbox, unless `prepare` is False
        (`prepare_parts` later, e.g. in the thread that then grades that sandbox).
        """
        from labcoat.runner.lifecycle import parallel
        from labcoat.runner.session import LabSession, ensure_lab_image

        specs = [("", self.lab.sandbox)] + [(p.id, p.sandbox) for p in parts if p.sandbox]
        tags = {spec.image: ensure_lab_image(self.catalog, self.backend, spec.image, lambda m, f: None)
                for _, spec in specs}  # built (if need be) once, before the threads
        boxes = parallel([lambda i=i, s=s: self.start_one(s, i, tags[s.image]) for i, s in specs])
        self.session = LabSession(self.lab.id, boxes[0], {i: box for (i, _), box in zip(specs[1:], boxes[1:],
                                                                                          strict=True)})
        if prepare:
            groups = self.groups(parts)
            parallel([lambda g=g: self.prepare_parts(g) for g in groups.values()])
        return self.session

    def groups(self, parts: list[Part]) -> dict[str, list[Part]]:
        """`parts` by the sandbox they run in (machine id), in order."""
        assert self.session is not None
        out: dict[str, list[Part]] = {}
        for part in parts:
            out.setdefault(self.session.for_part(part.id).machine.id, []).append(part)
        return out

    def prepare_parts(self, parts: list[Part]) -> None:
        from labcoat.runner.steps import prepare_part

        assert self.session is not None
        for part in parts:
            prepare_part(self.catalog, self.session.for_part(part.id), part)

    def replace_sandbox(self, part: Part, prepare: list[Part]) -> Sandbox:
        """A fresh sandbox where `part` runs (the old one was left unusable), `prepare` prepared in it."""
        from labcoat.runner.steps import prepare_part

        assert self.session is not None
        old = self.session.for_part(part.id)
        own = part.id in self.session.parts
        self.life.remove([old.machine])
        self.replaced += 1
        new = self.start_one(part.sandbox if own and part.sandbox else self.lab.sandbox, part.id if own else "")
        if own:
            self.session.parts[part.id] = new
        else:
            self.session.main = new
        for p in prepare:
            prepare_part(self.catalog, new, p)
        return new

    def release(self, machine: Machine) -> None:
        """Remove one sandbox whose parts are all checked, while the others still work.

        `remove` still looks for it at the end (and for what its parts started: they carry the
        session's labels), so a removal that fails here costs nothing but time.
        """
        self.life.remove([machine])

    def remove(self) -> None:
        """Remove every sandbox of this grading, also those started but never handed back."""
        self.life.cleanup()
        from labcoat.paths import state_dir

        for machine in self.started:
            shutil.rmtree(state_dir() / "runs" / machine.id[:32], ignore_errors=True)


def grade_owner() -> str:
    """A sandbox owner of its own for one submission (so parallel gradings never meet)."""
    from labcoat.runner.session import owner

    return os.environ.get("LABCOAT_GRADE_OWNER") or f"{owner()}-grade-{secrets.token_hex(4)}"
