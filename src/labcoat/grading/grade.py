"""`lab grade`: run a student's submission in fresh sandboxes and score it like `lab check` does.

A submission is a folder with one shell script per part, named after the part's id
(`part1.sh`, ...), and the quiz answers file `quiz.yaml` (what `lab quiz ID --template`
writes). docs/grading.md describes the layout, the limits and the reports.

Student code is untrusted. Each script runs inside its part's sandbox only, never on the
host: no network, every capability dropped (plus only what the lab's sandbox declares in
`cap_add`), `no-new-privileges`, the lab's pids and memory limits, no container log (so
writing to PID 1's stdout cannot fill the host's disk), a wall-clock timeout and a cap on
the output it may produce. Processes a script leaves behind are stopped from the host
before anything else happens in that sandbox. Parts that run on the host (`runs_on:
host`, e.g. with the docker CLI) run in a container of their own whose `docker` reaches
a policy-enforcing proxy, never the engine (grading/host_parts.py).

Grading sessions carry labels of their own (kind "grade", a unique owner per submission)
and are removed at the end whatever happens. Anything that keeps the grader from judging
the work (Docker down, an image that does not build, a check that errors, the grader's
own timeout) makes the submission *ungradable*: never a score of zero.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labcoat.errors import InfrastructureFailure, LabError, UsageProblem
from labcoat.grading.containment import (
    Guard,
    _stopped,
    run_script_in_sandbox,
    stop_leftovers,
)
from labcoat.grading.limits import Limits, sandbox_limits
from labcoat.grading.results import Grade, GradedPart, ScriptRun, _now, grade_quiz, static_checks, zero_part
from labcoat.grading.sandboxes import GradeSession, grade_owner, grading_backend
from labcoat.grading.submission import Submission, has_work, script_name

if TYPE_CHECKING:
    from labcoat.backends.base import Backend
    from labcoat.content.catalog import Catalog
    from labcoat.content.models import Lab, Part

Say = Callable[[str], Any]


class GraderTimeout(BaseException):
    """The grader's own time limit for one submission ran out (ungradable)."""


@contextlib.contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    """Raise GraderTimeout in the main thread after `seconds` (nothing elsewhere: no signals there)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def fire(signum: int, frame: Any) -> None:
        raise GraderTimeout

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def grade_submission(
    catalog: Catalog,
    lab: Lab,
    path: Path,
    *,
    part_ids: list[str] | tuple[str, ...] = (),
    quiz: bool = True,
    limits: Limits | None = None,
    student: str | None = None,
    backend: Backend | None = None,
    say: Say | None = None,
    seed: str | None = None,
) -> Grade:
    """Grade the submission in `path`: never raises for the submission's content, only for usage.

    Infrastructure failures come back as an ungradable Grade; KeyboardInterrupt passes
    through after every sandbox is removed.
    """
    limits = limits or Limits()
    say = say or (lambda message: None)
    wanted = set(part_ids)
    unknown = wanted - {p.id for p in lab.parts}
    if unknown:
        raise UsageProblem(f"lab {lab.id} has no part {', '.join(sorted(unknown))}",
                           hint=f"its parts: {', '.join(p.id for p in lab.parts)}")
    sub = Submission.read(path, lab, student)
    from labcoat.grading.capacity import cpu_cap, grading_containers, host_cpus

    # Every sandbox of this submission may run at once, and a host part's runner and learner containers
    # beside them: together they get at most the host's CPUs (a batch passes --cpus already divided by --jobs).
    limits = replace(limits, cpus=cpu_cap(host_cpus(), 1, grading_containers(lab, part_ids), limits.cpus))
    grade = Grade(lab=lab.id, title=lab.title, student=sub.student, submission=str(path), pass_mark=lab.pass_mark,
                  started_at=_now(), limits=limits.to_dict())
    began = time.monotonic()
    if quiz:
        grade.quiz = grade_quiz(catalog, lab, sub.quiz_file)
        if grade.quiz is not None and sub.quiz_problem:  # e.g. quiz.yaml is a symlink out of the submission
            grade.quiz.error = sub.quiz_problem
    parts = [p for p in lab.parts if not wanted or p.id in wanted]
    sessions: list[GradeSession] = []
    try:
        try:
            with _alarm(limits.grade_timeout):
                _grade_parts(catalog, lab, sub, parts, grade, limits, backend, say, began, sessions, seed)
        finally:
            for gs in sessions:  # outside the alarm: nothing interrupts the removal
                gs.remove()
    except GraderTimeout:
        grade.gradable, grade.error = False, f"the grader's own time limit ({limits.grade_timeout:g} s) ran out"
    except InfrastructureFailure as exc:
        grade.gradable, grade.error = False, exc.message
    except UsageProblem:
        raise
    except LabError as exc:
        grade.gradable, grade.error = False, f"{type(exc).__name__}: {exc}" + (f" ({exc.hint})" if exc.hint else "")
    except Exception as exc:  # noqa: BLE001 - a bug must not become a student's zero
        if os.environ.get("LAB_DEBUG"):
            raise
        grade.gradable, grade.error = False, f"internal error in the grader: {type(exc).__name__}: {exc}"
    grade.duration = time.monotonic() - began
    supports = sessions[0].backend.supports if sessions else {}
    grade.limits["sandboxes"] = sandbox_limits(lab, limits, part_ids, supports=supports)
    if grade.gradable and any(p.status == "error" for p in grade.parts):
        bad = [c for p in grade.parts for c in p.checks if c.status == "error"]
        grade.gradable = False
        grade.error = "a check could not run: " + "; ".join(f"{c.part} {c.check}: {c.message}" for c in bad[:3])
    return grade


FOLLOW_ALONG = "a follow-along part: there is nothing to verify, 0 of 0 points"


def _grade_parts(catalog: Catalog, lab: Lab, sub: Submission, parts: list[Part], grade: Grade, limits: Limits,
                 backend: Backend | None, say: Say, began: float, sessions: list[GradeSession], seed: str | None = None) -> None:
    from labcoat.hostinfo import missing

    run_parts: list[Part] = []
    results: dict[str, GradedPart] = {}
    for part in parts:
        script = sub.scripts.get(part.id)
        if part.follow_along:  # nothing to verify: 0 of 0, whether or not the submission has a script
            results[part.id] = GradedPart(part.id, part.title, "skipped", reason=FOLLOW_ALONG,
                                          script=ScriptRun(script_name(part), script is not None))
            continue
        checks = static_checks(catalog, part)
        lacking = missing(part.requires)
        if lacking:
            reason = "this grading host cannot show it: " + "; ".join(f.detail for f in lacking)
            results[part.id] = GradedPart(part.id, part.title, "skipped", reason=reason,
                                          script=ScriptRun(script_name(part), script is not None))
            continue
        if not has_work(script):
            why = sub.problems.get(part.id) or (f"{script_name(part)} has no commands (only comments)"
                                                if script is not None else f"no {script_name(part)} in the submission")
            zero = zero_part(part, checks, f"nothing: {why}")
            results[part.id] = GradedPart(part.id, part.title, "failed", zero.checks, reason=why,
                                          script=ScriptRun(script_name(part), script is not None, note=why))
            continue
        run_parts.append(part)
    try:
        if run_parts:
            from labcoat.grading.capacity import preflight, shortage

            short = shortage(preflight(lab, part_ids=[p.id for p in run_parts], pids_limit=limits.pids_limit))
            if short:
                raise InfrastructureFailure(short + " (before any sandbox started)")
            if backend is None:
                backend = grading_backend()
            # The seed draws the part's random values (names, sizes): the same seed, the same sandbox.
            gs = GradeSession(backend, catalog, lab, grade_owner(), secrets.token_hex(4),
                              seed or str(secrets.randbelow(2**31)), sub.student, limits)
            sessions.append(gs)
            grade.seed = gs.seed
            say(f"{sub.student}: starting the sandboxes")
            gs.start(run_parts, prepare=False)  # each sandbox's thread prepares its parts, then grades them
            _grade_sandboxes(gs, run_parts, sub, say, results)
    finally:
        # Also when grading stopped half-way (ungradable): the reports show what was judged.
        grade.parts = [results[p.id] for p in parts if p.id in results]


def _grade_sandboxes(gs: GradeSession, run_parts: list[Part], sub: Submission, say: Say,
                     results: dict[str, GradedPart]) -> None:
    """Prepare and grade the parts of each sandbox in order, the sandboxes at the same time (a thread each).

    Parts in one sandbox run one after the other, each checked before the next script runs.
    The last part of a sandbox is checked as soon as its thread is done, together with any
    other sandbox's last part that is waiting then (one pytest session for them), while the
    other sandboxes still work; then that sandbox is removed, since nothing needs it any more.
    """
    assert gs.session is not None
    groups = gs.groups(run_parts)
    pending: list[_Pending] = []
    lock = threading.Lock()
    errors: list[BaseException] = []
    done = threading.Semaphore(0)

    def flush() -> None:
        """Check every part waiting for its checks (those of sandboxes that are done)."""
        with _CHECKS:
            with lock:
                batch = pending[:]
                pending.clear()
            if batch:
                for graded in _check_pending(gs, batch):
                    results[graded.part] = graded

    def work(parts: list[Part]) -> None:
        try:
            gs.prepare_parts(parts)
            for i, part in enumerate(parts):
                say(f"{sub.student}: {part.id}")
                later = parts[i + 1:]
                out = _grade_one(gs, part, sub.scripts[part.id] or "", later, check=bool(later))
                if isinstance(out, _Pending):
                    with lock:
                        pending.append(out)
                else:
                    results[part.id] = out
            flush()
            assert gs.session is not None
            gs.release(gs.session.for_part(parts[-1].id).machine)
        except BaseException as exc:  # noqa: BLE001 - handed to the grading thread
            errors.append(exc)
        finally:
            done.release()

    threads = [threading.Thread(target=work, args=(parts,), daemon=True, name="labcoat-grade-sandbox")
               for parts in groups.values()]
    for thread in threads:
        thread.start()
    for _ in threads:
        while not done.acquire(timeout=0.2):  # short waits: the grader's alarm can interrupt
            pass
        if errors:
            raise errors[0]


@dataclass
class _Pending:
    """A part whose script ran and whose checks are still to run."""

    part: Part
    run: ScriptRun
    provocation: dict[str, Any] | None


_CHECKS = threading.Lock()  # pytest sessions run one at a time (pytest.main is not thread-safe)
# A provocation that runs during the script serves the script only: once the script has ended (and the
# provocation ran at least this long, two of PSI's 2-second avg10 updates), the grader stops it.
MIN_PROVOCATION = 4.0
AFTER_SCRIPT = 0.75  # seconds the runner keeps sampling after the script, so its last reading is bracketed


def _check_pending(gs: GradeSession, pending: list[_Pending]) -> list[GradedPart]:
    """Run the checks of `pending` in one pytest session (the caller holds _CHECKS)."""
    from labcoat.checking.run import run_checks

    assert gs.session is not None
    order = {p.id: i for i, p in enumerate(gs.lab.parts)}
    pending = sorted(pending, key=lambda p: order[p.part.id])
    checked = run_checks(gs.catalog, gs.session, gs.lab, [p.part for p in pending])
    return [GradedPart(p.part.id, p.part.title, r.status, r.checks, script=p.run, reason=r.skipped_reason,
                       provocation=p.provocation) for p, r in zip(pending, checked, strict=True)]


class _Broken(Exception):
    """The sandbox was left unusable by the script that just ran."""


def _grade_one(gs: GradeSession, part: Part, text: str, later: list[Part],
               check: bool = True) -> GradedPart | _Pending:
    """Run one part's script (and provocation) in its sandbox, then its checks (or later: `check=False`)."""
    from labcoat.checking.run import run_checks
    from labcoat.runner.attempt import attempt
    from labcoat.runner.records import load_record

    assert gs.session is not None
    session, backend = gs.session, gs.backend
    sandbox = session.for_part(part.id)
    machine = sandbox.machine
    labels = gs.labels(part.id)
    guard = Guard(backend, machine, part, labels)
    guard.before()
    baseline = guard.baseline
    box: dict[str, Any] = {"run": ScriptRun(script_name(part), True, ran=True)}

    def after_script() -> str | None:
        """Stop what the script left; why the part cannot be judged (None: it can)."""
        why = guard.after()
        box["run"].leftover_processes += guard.killed
        return why

    def go() -> ScriptRun:
        try:
            if part.runs_on == "host":  # its docker commands go through a policy proxy (grading/host_parts.py)
                from labcoat.grading.host_parts import run_host_script

                box["run"] = run_host_script(gs, part, text)
            else:
                box["run"] = run_script_in_sandbox(backend, machine, part, text, gs.limits,
                                                   (part.sandbox or gs.lab.sandbox).disk_bytes, labels)
        except LabError:
            gone = _stopped(backend, machine)
            if not gone:
                raise
            box["run"].note = gone
            raise _Broken(f"{box['run'].file} left its sandbox unusable: {gone}") from None
        if box["run"].disk_exceeded:
            after_script()  # stop what is left before the sandbox is replaced
            raise _Broken(f"{box['run'].file} was {box['run'].note}")
        if not part.provoke or part.provoke_when == "after":
            # Before a provocation "after", nothing the script started may still run.
            why = after_script()
            if why:
                raise _Broken(why)
        else:
            # A provocation "during" the script: let it run a little longer (its sampling must bracket the
            # script's last reading), then stop what it and the script still run in the sandbox.
            time.sleep(max(AFTER_SCRIPT, MIN_PROVOCATION - (time.monotonic() - began)))
            with contextlib.suppress(LabError):
                # Not frozen: the provocation's runner may be starting its next `docker exec` (after_script
                # freezes and kills once the runner has ended).
                box["provocation_stopped"] = stop_leftovers(backend, machine, baseline, labels, freeze=False)
        return box["run"]

    env = {"LAB_SEED": str(sandbox.seed), "LAB_PART": part.id}
    why: str | None = None
    began = time.monotonic()
    try:
        attempt(gs.catalog, session, part, text, env, run=go)
    except _Broken as exc:
        why = str(exc)
    else:
        # Without a provocation, go() has settled the sandbox already; a provocation may have left
        # processes of its own (or broken the sandbox): look again.
        why = after_script() if part.provoke else None
    run: ScriptRun = box["run"]
    if why:
        zero = zero_part(part, static_checks(gs.catalog, part), f"nothing could be checked: {why}")
        if later:  # the parts still to come in that sandbox get a fresh one, prepared again
            gs.replace_sandbox(part, later)
        return GradedPart(part.id, part.title, "failed", zero.checks, script=run, reason=why)
    provocation = None
    if part.provoke:
        record = load_record(machine.id, part.provoke) or {}
        provocation = {"scenario": part.provoke, "when": part.provoke_when, "status": record.get("status"),
                       "reason": record.get("reason") or None}
        if "provocation_stopped" in box:
            provocation.update(status="stopped", reason=(
                f"stopped by the grader {AFTER_SCRIPT:g} s or more after the script ended (at least "
                f"{MIN_PROVOCATION:g} s in all; {box['provocation_stopped']} process(es)): the checks use what "
                f"it measured while the script ran" + (f"; its own verdict then: {record.get('status')}"
                                                        if record.get("status") not in (None, "error") else "")))
    if not check:
        return _Pending(part, run, provocation)
    with _CHECKS:
        result = run_checks(gs.catalog, session, gs.lab, [part])[0]
    return GradedPart(part.id, part.title, result.status, result.checks, script=run,
                      reason=result.skipped_reason, provocation=provocation)
