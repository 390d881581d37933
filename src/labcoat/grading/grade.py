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

import ast
import contextlib
import os
import re
import secrets
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labcoat.errors import InfrastructureFailure, LabError, UsageProblem

if TYPE_CHECKING:
    from labcoat.backends.base import Machine
    from labcoat.checking.run import CheckResult, PartResult
    from labcoat.content.catalog import Catalog
    from labcoat.content.models import Lab, Part, SandboxSpec
    from labcoat.runner.lifecycle import Lifecycle
    from labcoat.runner.session import LabSession, Sandbox

KIND = "grade"
QUIZ_FILE = "quiz.yaml"
SCRIPT_DIR = "/opt/labcoat-submission"
MAX_SCRIPT_BYTES = 256 * 1024
HOST_ONLY = "not graded automatically: needs the host's Docker, which a submission never gets"
L_GRADER = "labcoat.grader"
L_STUDENT = "labcoat.student"

Say = Callable[[str], Any]

# The student's script runs under bash from /root; its stdout and stderr together pass through
# `head -c`, so an endless writer is stopped in the sandbox (SIGPIPE) instead of flooding the grader.
# stdbuf -o0: head passes on what it read at once, so output written before a timeout is kept.
WRAPPER = ('set -o pipefail; cd /root || exit 97; sb=; command -v stdbuf >/dev/null && sb="stdbuf -o0"; '
           'bash "$1" </dev/null 2>&1 | $sb head -c "$2"')


def script_name(part: Part) -> str:
    """The file a submission holds for `part`: its id plus `.sh` (nothing here names a lab)."""
    return f"{part.id}.sh"


def layout(lab: Lab) -> list[str]:
    """The files of a complete submission for `lab`, in order."""
    files = [script_name(p) for p in lab.parts]
    return [*files, QUIZ_FILE] if lab.quiz else files


# ----------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Limits:
    """What a submission's script may use (documented in docs/grading.md)."""

    script_timeout: float = 60.0  # wall clock per script, seconds
    max_output: int = 64 * 1024  # bytes of output kept per script (stdout and stderr together)
    pids_limit: int | None = None  # None: the lab's sandbox pids_limit
    cpus: float | None = None  # per sandbox; None: the lab's, capped to a fair share of the host (capacity.cpu_cap)
    grade_timeout: float = 900.0  # the whole submission, seconds; beyond it: ungradable

    def to_dict(self) -> dict[str, Any]:
        return {"script_timeout": self.script_timeout, "max_output": self.max_output,
                "pids_limit": self.pids_limit, "cpus": self.cpus, "grade_timeout": self.grade_timeout,
                "network": False, "capabilities": "all dropped (plus the lab's cap_add)",
                "no_new_privileges": True}


def sandbox_limits(lab: Lab, limits: Limits, part_ids: list[str] | tuple[str, ...] = (),
                   supports: dict[str, bool] | None = None) -> dict[str, Any]:
    """The limits of every grading sandbox (for the report's `limits`, `lab status`, `lab doctor`)."""
    from labcoat.grading.capacity import lab_sandboxes

    supports = supports or {}
    out: dict[str, Any] = {}
    wanted = set(part_ids)
    names = ["main"] + [p.id for p in lab.parts if p.sandbox and (not wanted or p.id in wanted)
                        and p.runs_on != "host"]
    for name, spec in zip(names, lab_sandboxes(lab, part_ids), strict=True):
        out[name] = describe_sandbox(spec, cpus=effective_cpus(spec, limits), pids=_pids(spec, limits),
                                     supports=supports)
    return out


def describe_sandbox(spec: SandboxSpec, *, cpus: float | None = None, pids: int | None = None,
                     supports: dict[str, bool] | None = None) -> dict[str, Any]:
    """One sandbox's limits and how each is enforced, in plain words (JSON-ready)."""
    supports = supports or {}
    io = supports.get("BlkioWeight")
    return {
        "memory": spec.memory_bytes, "swap": spec.swap_bytes, "pids_limit": pids or spec.pids_limit,
        "disk": spec.disk_bytes,
        "disk_enforced": ("read-only root filesystem: only the tmpfs folders are writable" if spec.read_only_root
                          else "RLIMIT_FSIZE caps every file; lab grade also measures the writable layer from the "
                          "host while a script runs and stops the script at the limit"),
        "tmpfs": spec.tmpfs_bytes, "tmpfs_enforced": "size-limited tmpfs, pages charged to the memory cgroup",
        "read_only_root": spec.read_only_root,
        "cpus": cpus if cpus is not None else spec.cpus, "cpu_shares": spec.cpu_shares,
        "io_weight": spec.io_weight if io else None,
        "io_weight_enforced": ("blkio/io weight" if io else "not supported by this host's I/O scheduler or "
                               "cgroup (no blkio.weight on v1, no io controller on v2): not applied" if supports else "unknown"),
    }


def effective_cpus(spec: SandboxSpec, limits: Limits) -> float | None:
    """The --cpus a grading sandbox gets: the lab's, within the cap `limits.cpus` (a fair share)."""
    if limits.cpus and spec.cpus:
        return min(limits.cpus, spec.cpus)
    return limits.cpus or spec.cpus


def _pids(spec: SandboxSpec, limits: Limits) -> int:
    return min(spec.pids_limit, limits.pids_limit) if limits.pids_limit else spec.pids_limit


# ----------------------------------------------------------------------------- results


@dataclass
class ScriptRun:
    """What one of the student's scripts did."""

    file: str
    present: bool
    ran: bool = False
    exit_status: int | None = None
    duration: float = 0.0
    timed_out: bool = False
    output: str = ""
    output_bytes: int = 0
    truncated: bool = False
    leftover_processes: int = 0
    note: str | None = None
    disk_exceeded: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "present": self.present, "ran": self.ran, "exit_status": self.exit_status,
                "duration": round(self.duration, 3), "timed_out": self.timed_out, "output": self.output,
                "output_bytes": self.output_bytes, "truncated": self.truncated,
                "leftover_processes": self.leftover_processes, "note": self.note,
                "disk_exceeded": self.disk_exceeded}


@dataclass
class GradedPart:
    """One part's verdict: its checks (with points), the script that ran, the provocation."""

    part: str
    title: str
    status: str  # passed | failed | skipped | not_graded | error
    checks: list[CheckResult] = field(default_factory=list)
    script: ScriptRun | None = None
    reason: str | None = None
    provocation: dict[str, Any] | None = None

    @property
    def points(self) -> float:
        return round(sum(c.points for c in self.checks), 4)

    @property
    def max_points(self) -> float:
        return round(sum(c.max_points for c in self.checks), 4)

    def to_dict(self) -> dict[str, Any]:
        return {"part": self.part, "title": self.title, "status": self.status, "points": self.points,
                "max_points": self.max_points, "reason": self.reason,
                "script": self.script.to_dict() if self.script else None, "provocation": self.provocation,
                "checks": [_check_dict(c) for c in self.checks]}


def _check_dict(c: CheckResult) -> dict[str, Any]:
    data = c.to_dict()
    data.pop("part", None)
    data["points"] = round(float(data["points"]), 4)
    data["max_points"] = round(float(data["max_points"]), 4)
    data["duration"] = round(float(data.get("duration") or 0), 3)
    return data


@dataclass
class QuizGrade:
    """The quiz, scored from the submission's answers file and scaled to the lab's quiz_points."""

    quiz: str
    file: str
    present: bool
    max_points: float
    points: float = 0.0
    score: float = 0.0  # fraction of the quiz's own points (0..1)
    error: str | None = None
    questions: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"quiz": self.quiz, "file": self.file, "present": self.present, "points": self.points,
                "max_points": self.max_points, "score": self.score, "error": self.error,
                "questions": self.questions}


@dataclass
class Grade:
    """Everything about one graded submission; `to_dict()` is labcoat's JSON (docs/grading.md)."""

    lab: str
    title: str
    student: str
    submission: str
    pass_mark: float
    parts: list[GradedPart] = field(default_factory=list)
    quiz: QuizGrade | None = None
    gradable: bool = True
    error: str | None = None
    started_at: str = ""
    duration: float = 0.0
    limits: dict[str, Any] = field(default_factory=dict)
    seed: str | None = None  # drew the sandboxes' random values; `--seed` grades again the same way

    @property
    def points(self) -> float:
        total = sum(p.points for p in self.parts) + (self.quiz.points if self.quiz else 0)
        return round(total, 2)

    @property
    def max_points(self) -> float:
        total = sum(p.max_points for p in self.parts) + (self.quiz.max_points if self.quiz else 0)
        return round(total, 2)

    @property
    def score(self) -> float:
        """Points as a fraction of the points that could be earned (0..1)."""
        return round(self.points / self.max_points, 4) if self.max_points else 0.0

    @property
    def passed(self) -> bool:
        return self.gradable and self.max_points > 0 and self.points / self.max_points >= self.pass_mark - 1e-9

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "kind": "labcoat.grade",
            "lab": self.lab,
            "title": self.title,
            "student": self.student,
            "submission": self.submission,
            "gradable": self.gradable,
            "error": self.error,
            "points": self.points if self.gradable else None,
            "max_points": self.max_points,
            "score": self.score if self.gradable else None,
            "pass_mark": self.pass_mark,
            "passed": self.passed,
            "started_at": self.started_at,
            "duration": round(self.duration, 2),
            "limits": self.limits,
            "seed": self.seed,
            "parts": [p.to_dict() for p in self.parts],
            "quiz": self.quiz.to_dict() if self.quiz else None,
        }


def ungradable(lab: Lab, student: str, submission: Path | str, error: str, **extra: Any) -> Grade:
    """A Grade that says the grader could not judge this submission (and why)."""
    return Grade(lab=lab.id, title=lab.title, student=student, submission=str(submission), pass_mark=lab.pass_mark,
                 gradable=False, error=error, started_at=_now(), **extra)


# ----------------------------------------------------------------------------- the submission


@dataclass
class Submission:
    """A submission folder as read from disk (nothing in it is run on the host)."""

    path: Path
    student: str
    scripts: dict[str, str | None]  # part id -> script text, None when the file is missing
    problems: dict[str, str]  # part id -> why the file could not be used (too large, ...)
    quiz_file: Path | None

    @classmethod
    def read(cls, path: Path, lab: Lab, student: str | None = None) -> Submission:
        path = Path(path)
        if not path.is_dir():
            raise UsageProblem(f"{path} is not a folder", hint="a submission is a folder: `lab grade --template "
                               f"{lab.id} DIR` writes one to fill in")
        scripts: dict[str, str | None] = {}
        problems: dict[str, str] = {}
        for part in lab.parts:
            file = path / script_name(part)
            if not file.is_file():
                scripts[part.id] = None
                continue
            size = file.stat().st_size
            if size > MAX_SCRIPT_BYTES:
                scripts[part.id] = None
                problems[part.id] = f"{file.name} is {size} bytes; a script may have at most {MAX_SCRIPT_BYTES}"
                continue
            scripts[part.id] = file.read_bytes().decode("utf-8", errors="replace")
        quiz = path / QUIZ_FILE
        return cls(path, student or safe_name(path.resolve().name), scripts, problems,
                   quiz if quiz.is_file() else None)


def safe_name(text: str) -> str:
    """A student name usable in labels, file names and CSV cells."""
    cleaned = re.sub(r"[^A-Za-z0-9._@+-]+", "-", text).strip("-.")
    return cleaned[:64] or "student"


def has_work(script: str | None) -> bool:
    """A script with at least one line that is not blank or a comment (a template left as it is has none)."""
    return bool(script) and any(line.strip() and not line.strip().startswith("#")
                                for line in script.splitlines())  # type: ignore[union-attr]


# ----------------------------------------------------------------------------- the quiz


def grade_quiz(catalog: Catalog, lab: Lab, quiz_file: Path | None) -> QuizGrade | None:
    """The quiz part of the grade: the answers file scored with the quiz engine, scaled to quiz_points.

    A missing or unreadable answers file scores 0 (the error says why): it is the student's
    file, so it is never a reason to call the submission ungradable.
    """
    if not lab.quiz:
        return None
    from labcoat.quiz.answers import load_answers
    from labcoat.quiz.engine import score_quiz

    quiz = catalog.quiz(lab.quiz)
    worth = float(lab.quiz_points)
    grade = QuizGrade(quiz=quiz.id, file=QUIZ_FILE, present=quiz_file is not None, max_points=worth)
    answers: dict[str, Any] = {}
    if quiz_file is None:
        grade.error = f"no {QUIZ_FILE} in the submission"
    else:
        try:
            answers = load_answers(quiz_file, quiz, display=QUIZ_FILE)
        except LabError as exc:
            grade.error = f"{QUIZ_FILE} could not be read: {exc}"
    result = score_quiz(quiz, answers)
    scale = Fraction(lab.quiz_points) / result.max_points if result.max_points else Fraction(0)
    grade.points = round(float(result.points * scale), 4)
    grade.score = round(float(result.score), 4)
    for r in result.results:
        grade.questions.append({"id": r.question_id, "type": r.type, "points": round(float(r.points * scale), 4),
                                "max_points": round(float(r.max_points * scale), 4), "correct": r.correct,
                                "answered": r.answered, "feedback": r.feedback,
                                # explanations: 0/0 automatic points; their words, model answer and rubric
                                # are in the feedback, for manual grading (docs/quiz.md)
                                **({"manual_points": r.manual_points, "graded_by": "people"} if r.manual else {})})
    return grade


# ----------------------------------------------------------------------------- checks without a sandbox


def static_checks(catalog: Catalog, part: Part) -> list[CheckResult]:
    """The part's checks (name, first docstring line) read from its file without running anything."""
    from labcoat.checking.run import CheckResult

    tree = ast.parse(catalog.checks_file(part).read_text(encoding="utf-8"))
    out = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
            doc = (ast.get_docstring(node) or "").strip().splitlines()
            title = doc[0] if doc else node.name.removeprefix("test_").replace("_", " ")
            out.append(CheckResult(part=part.id, check=node.name, title=title, status="failed", points=0,
                                   max_points=0))
    return out


def zero_part(part: Part, checks: list[CheckResult], found: str, status: str = "failed") -> PartResult:
    """Every check of `part` failed with the same reason (points still shared as the lab says)."""
    from labcoat.checking.run import CheckResult, PartResult, assign_points

    result = PartResult(part.id, part.title)
    for c in checks or [CheckResult(part.id, "(part)", part.title, status, 0, 0)]:
        result.checks.append(replace(c, status=status, points=0.0, found=found, hint=None, message=found))
    assign_points(part, result)
    for c in result.checks:
        c.points = 0.0
    return result


# ----------------------------------------------------------------------------- the sandboxes


def grading_backend() -> Any:
    """The container backend grading runs on ($LABCOAT_BACKEND, else the default; sandboxes keep no
    container log: see MachineSpec.keep_log)."""
    from labcoat.backends import DEFAULT_BACKEND, get_backend

    backend = get_backend(os.environ.get("LABCOAT_BACKEND") or DEFAULT_BACKEND)
    if not backend.is_container:  # a student's script never runs on the grading host itself
        raise UsageProblem(f"`lab grade` runs submissions in container sandboxes only, not with the {backend.name} "
                           f"backend", hint=f"use --backend {DEFAULT_BACKEND}")
    return backend


def grade_spec(spec: SandboxSpec, image_tag: str, seed: str, name: str, limits: Limits) -> Any:
    """A lab sandbox's MachineSpec, locked down for untrusted code."""
    from labcoat.runner.session import machine_spec

    base = machine_spec(spec, image_tag, name, seed)
    return replace(base, network=False, cap_drop=("ALL",), cap_add=tuple(spec.cap_add), no_new_privileges=True,
                   pids_limit=_pids(spec, limits), cpus=effective_cpus(spec, limits))


@dataclass
class GradeSession:
    """The sandboxes of one submission's grading and how to find them again by their labels."""

    backend: Any
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


# ----------------------------------------------------------------------------- processes in a sandbox


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


def sandbox_processes(backend: Any, machine: Machine) -> dict[int, int]:
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


def _kill_from_helper(backend: Any, machine: Machine, pids: list[int], labels: dict[str, str]) -> None:
    """Kill processes through a short-lived container in the sandbox's PID namespace.

    For a grader that may use Docker but not signal root's processes on the host. The
    helper gets no network and no capabilities: the same uid needs none to send a signal.
    """
    ns = [str(n) for p in pids if (n := _ns_pid(p))]
    if not ns:
        return
    with contextlib.suppress(Exception):  # "no such process" for one that ended meanwhile; survivors are counted next
        backend.run_beside(machine, ["kill", "-9", *ns], labels)


def stop_leftovers(backend: Any, machine: Machine, baseline: dict[int, int], labels: dict[str, str],
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


def _stopped(backend: Any, machine: Machine) -> str | None:
    """None while the container runs, else how it ended."""
    try:
        state = backend.inspect(machine).get("State", {})
    except Exception as exc:  # noqa: BLE001 - docker.errors.NotFound and friends
        return f"the container is gone ({type(exc).__name__})"
    if not state.get("Running") or not state.get("Pid"):
        return f"the container stopped (exit code {state.get('ExitCode')})"
    return None


def settle(backend: Any, machine: Machine, baseline: dict[int, int], labels: dict[str, str],
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


def system_changes(backend: Any, machine: Machine) -> set[str]:
    """Paths under PROTECTED that differ from the image (docker diff: added, changed, deleted)."""
    try:
        changes = backend.changed_files(machine)
    except Exception as exc:  # noqa: BLE001 - the engine's problem, not the student's
        raise InfrastructureFailure(f"cannot compare {machine.name} with its image: {exc}") from None
    return {c for c in changes if any(c == p or c.startswith(p + "/") for p in PROTECTED)}


def leaves(paths: set[str]) -> list[str]:
    """The changed files themselves, without the folders that changed because of them."""
    return sorted(p for p in paths if not any(q.startswith(p + "/") for q in paths))


def healthy(backend: Any, machine: Machine) -> str | None:
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
    """Measure a sandbox's writable layer from the host while a script runs; stop the script past `limit`."""

    INTERVAL = 0.25

    def __init__(self, backend: Any, machine: Machine, limit: int | None, labels: dict[str, str]) -> None:
        self.backend, self.machine, self.limit, self.labels = backend, machine, limit, labels
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
            self.peak = max(self.peak, used)
            if self.limit and used > self.limit:
                self.exceeded = used
                with contextlib.suppress(LabError):  # the script's processes: its exec then returns
                    stop_leftovers(self.backend, self.machine, self.baseline, self.labels)
                return


def run_script_in_sandbox(backend: Any, machine: Machine, part: Part, text: str, limits: Limits,
                          disk: int | None = None, labels: dict[str, str] | None = None) -> ScriptRun:
    """Copy the script into the sandbox and run it there with the limits (never on the host).

    `disk`: the sandbox's disk limit in bytes; the writable layer is watched while the script
    runs and the script is stopped when it grows past it (`ScriptRun.disk_exceeded`).
    """
    from labcoat.grading.capacity import mib

    run = ScriptRun(file=script_name(part), present=True, ran=True)
    path = f"{SCRIPT_DIR}/{script_name(part)}"
    backend.put_bytes(machine, text.encode(), path, 0o755)
    env = {"LAB_PART": part.id, "HOME": "/root"}
    began = time.monotonic()
    with DiskWatch(backend, machine, disk, labels or {}) as watch:
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


# ----------------------------------------------------------------------------- grading


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


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def grade_owner() -> str:
    """A sandbox owner of its own for one submission (so parallel gradings never meet)."""
    from labcoat.runner.session import owner

    return os.environ.get("LABCOAT_GRADE_OWNER") or f"{owner()}-grade-{secrets.token_hex(4)}"


def grade_submission(
    catalog: Catalog,
    lab: Lab,
    path: Path,
    *,
    part_ids: list[str] | tuple[str, ...] = (),
    quiz: bool = True,
    limits: Limits | None = None,
    student: str | None = None,
    backend: Any = None,
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
    from labcoat.grading.capacity import cpu_cap, host_cpus, lab_sandboxes

    # Every sandbox of this submission may run at once: together they get at most the host's CPUs
    # (a batch passes --cpus already divided by --jobs).
    limits = replace(limits, cpus=cpu_cap(host_cpus(), 1, len(lab_sandboxes(lab, part_ids)), limits.cpus))
    grade = Grade(lab=lab.id, title=lab.title, student=sub.student, submission=str(path), pass_mark=lab.pass_mark,
                  started_at=_now(), limits=limits.to_dict())
    began = time.monotonic()
    if quiz:
        grade.quiz = grade_quiz(catalog, lab, sub.quiz_file)
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


def _grade_parts(catalog: Catalog, lab: Lab, sub: Submission, parts: list[Part], grade: Grade, limits: Limits,
                 backend: Any, say: Say, began: float, sessions: list[GradeSession], seed: str | None = None) -> None:
    from labcoat.hostinfo import missing

    run_parts: list[Part] = []
    results: dict[str, GradedPart] = {}
    for part in parts:
        script = sub.scripts.get(part.id)
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
    from labcoat.runner.attempt import attempt, clear_answers
    from labcoat.runner.records import load_record

    assert gs.session is not None
    session, backend = gs.session, gs.backend
    sandbox = session.for_part(part.id)
    machine = sandbox.machine
    labels = gs.labels(part.id)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="labcoat-grade-diff") as pool:
        diff = pool.submit(system_changes, backend, machine)  # meanwhile (the engine answers both at once):
        problem = healthy(backend, machine)
        if problem:
            raise InfrastructureFailure(f"the sandbox for {part.id} is not usable before its script ran: {problem}")
        clear_answers(backend, machine, part)
        baseline = sandbox_processes(backend, machine)
        system_before = diff.result()
    box: dict[str, Any] = {"run": ScriptRun(script_name(part), True, ran=True)}

    def after_script() -> str | None:
        """Stop what the script left; why the part cannot be judged (None: it can)."""
        killed, broken = settle(backend, machine, baseline, labels, health=False)
        box["run"].leftover_processes += killed
        if not broken:  # nothing it left runs now: compare with the image while probing the sandbox
            with ThreadPoolExecutor(1, thread_name_prefix="labcoat-grade-diff") as pool:
                diff = pool.submit(system_changes, backend, machine)
                broken = healthy(backend, machine)
                if broken:
                    diff.cancel()
                else:
                    after = diff.result()
        if broken:
            return f"{box['run'].file} left its sandbox unusable: {broken}"
        changed = leaves(after - system_before)
        if changed:
            return (f"{box['run'].file} changed the sandbox's system files ({', '.join(changed[:5])}); the checks "
                    "use the sandbox's own tools, so nothing in it can be trusted")
        return None

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


# ----------------------------------------------------------------------------- the template


def template_files(catalog: Catalog, lab: Lab, limits: Limits | None = None) -> dict[str, str]:
    """File name -> text of a submission to fill in: a commented script per part and the quiz answers."""
    limits = limits or Limits()
    files: dict[str, str] = {}
    for part in lab.parts:
        files[script_name(part)] = _script_template(catalog, lab, part, limits)
    if lab.quiz:
        from labcoat.quiz.answers import template

        files[QUIZ_FILE] = template(catalog.quiz(lab.quiz), 0)
    return files


_ANSWER = re.compile(r"answer\s+([a-z][a-z0-9-]*)\s+([A-Za-z_][A-Za-z0-9_]*)\s*([^`\n]*)")


def _script_template(catalog: Catalog, lab: Lab, part: Part, limits: Limits) -> str:
    instructions = catalog.lab_file(lab.id, part.instructions).read_text(encoding="utf-8")
    keys: dict[str, str] = {}
    for m in _ANSWER.finditer(instructions):
        if m.group(1) == part.id:
            keys.setdefault(m.group(2), m.group(3).strip() or "VALUE")
    where = (f"its own sandbox ({part.sandbox.memory} memory limit)" if part.sandbox
             else f"the lab's main sandbox ({lab.sandbox.memory} memory limit)")
    head = [
        "#!/bin/bash",
        f"# {lab.id} {part.id}: {part.title} ({part.points} points)",
        "#",
    ]
    if part.runs_on == "host":
        from labcoat.grading.host_parts import template_lines

        head += template_lines(part, limits)
    else:
        head += [
            "# `lab grade` runs this file with bash, as root, from /root, inside " + where + ",",
            "# after the part was prepared as `lab start` prepares it. There: no network, no",
            f"# capabilities, at most {limits.script_timeout:g} s and {limits.max_output // 1024} KiB of output;"
            " processes it leaves",
            "# running are stopped when it ends. Then the part's checks run, as `lab check " + part.id + "` does.",
        ]
        if part.provoke:
            when = "after this script ends" if part.provoke_when == "after" else "while this script runs"
            head.append(f"# The part's provocation (`lab provoke {part.id}`) runs {when}.")
        head += [
            "#",
            "# Record your answers inside the sandbox with the `answer` command:",
            f"#   answer {part.id} KEY VALUE",
        ]
        if keys:
            head.append("# The keys this part asks for:")
            head += [f"#   answer {part.id} {k} {v}" for k, v in keys.items()]
        head.append("#")
    head.append("# The task, as `lab show " + part.id + "` shows it:")
    head.append("#")
    head += [("# " + line).rstrip() for line in instructions.strip().splitlines()]
    head += ["", "# set -eu   # uncomment to stop at the first failing command", "", "# Your commands here.", ""]
    return "\n".join(head)


def write_template(catalog: Catalog, lab: Lab, folder: Path, *, force: bool = False) -> list[Path]:
    """Write the template into `folder`; refuse to overwrite a file unless `force`."""
    files = template_files(catalog, lab)
    folder = Path(folder)
    existing = [name for name in files if (folder / name).exists()]
    if existing and not force:
        raise UsageProblem(f"{folder} already has {', '.join(existing)}; not overwriting your work",
                           hint="pass --force to overwrite, or choose another folder")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
        written.append(folder / name)
    return written


# ----------------------------------------------------------------------------- a class


def batch_folders(folder: Path, out: Path | None = None) -> list[Path]:
    """The submissions of a class: every sub-folder (hidden ones and the output folder aside)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageProblem(f"{folder} is not a folder", hint="--batch takes a folder with one sub-folder per student")
    skip = Path(out).resolve() if out else None
    subs = [d for d in sorted(folder.iterdir()) if d.is_dir() and not d.name.startswith(".")
            and d.resolve() != skip]
    if not subs:
        raise UsageProblem(f"{folder} has no sub-folders", hint="put each student's submission in a folder of its own")
    return subs


def student_names(folders: list[Path]) -> list[str]:
    """A distinct, file-name-safe name per folder."""
    names: list[str] = []
    for folder in folders:
        base = safe_name(folder.name)
        name, n = base, 2
        while name in names:
            name, n = f"{base}-{n}", n + 1
        names.append(name)
    return names


def grade_batch(
    catalog: Catalog,
    lab: Lab,
    folder: Path,
    out: Path,
    *,
    jobs: int = 1,
    part_ids: list[str] | tuple[str, ...] = (),
    quiz: bool = True,
    limits: Limits | None = None,
    say: Say | None = None,
    shard: tuple[int, int] | None = None,
    seed: str | None = None,
) -> list[dict[str, Any]]:
    """Grade every sub-folder of `folder`, `jobs` at a time, each in a `lab grade` process of its own.

    A process per submission: each has its own sandboxes, owner label and time limit, and
    a grader that dies takes only that submission with it (reported as ungradable). Every
    student's reports go to out/STUDENT/ (results.json, junit.xml, summary.md, grader.log).
    Returns the labcoat JSON of every submission, in folder order.
    """
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    from labcoat.grading.capacity import cpu_cap, host_cpus, lab_sandboxes, preflight, shortage
    from labcoat.runner.session import L_OWNER, owner

    limits = limits or Limits()
    say = say or (lambda message: None)
    out = Path(out)
    from labcoat.grading.shard import shard_of, student_seed

    folders = batch_folders(folder, out)
    names = student_names(folders)
    if shard:  # this shard's submissions only: by a hash of the name, not by position
        kept = [(f, n) for f, n in zip(folders, names, strict=True) if shard_of(n, shard[1]) == shard[0]]
        folders, names = [f for f, _ in kept], [n for _, n in kept]
    short = shortage(preflight(lab, jobs=jobs, part_ids=part_ids, pids_limit=limits.pids_limit))
    if short:
        raise InfrastructureFailure(short + "; nothing was graded",
                                    hint="free some, or grade fewer at a time (--jobs)")
    # --jobs submissions, each with its sandboxes: together never more CPUs than the host has.
    limits = replace(limits, cpus=cpu_cap(host_cpus(), jobs, len(lab_sandboxes(lab, part_ids)), limits.cpus))
    out.mkdir(parents=True, exist_ok=True)
    running: dict[str, subprocess.Popen[bytes]] = {}
    lock = threading.Lock()
    stopping = threading.Event()

    def one(sub: Path, name: str) -> dict[str, Any]:
        dest = out / name
        dest.mkdir(parents=True, exist_ok=True)
        results = dest / "results.json"
        results.unlink(missing_ok=True)
        tag = f"{owner()}-grade-{secrets.token_hex(4)}"
        cmd = [sys.executable, "-m", "labcoat", "--content", str(catalog.root), "--backend", grading_backend().name, "grade",
               lab.id, "--submission", str(sub), "--student", name, "--json", str(results),
               "--junit", str(dest / "junit.xml"), "--markdown", str(dest / "summary.md"), "--quiet",
               "--timeout", f"{limits.script_timeout:g}", "--max-output", str(limits.max_output),
               "--grade-timeout", f"{limits.grade_timeout:g}"]
        cmd += [arg for pid in part_ids for arg in ("--part", pid)]
        cmd += [] if quiz else ["--no-quiz"]
        cmd += ["--pids-limit", str(limits.pids_limit)] if limits.pids_limit else []
        cmd += ["--cpus", f"{limits.cpus:g}"] if limits.cpus else []
        cmd += ["--seed", student_seed(seed, name)] if seed else []
        env = {**os.environ, "LABCOAT_GRADE_OWNER": tag}
        env.pop("GITHUB_STEP_SUMMARY", None)
        error = None
        if stopping.is_set():
            return ungradable(lab, name, sub, "the batch was interrupted before this submission").to_dict()
        say(f"{name}: grading")
        began = time.monotonic()
        with open(dest / "grader.log", "wb") as log:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
            with lock:
                running[name] = proc
            try:
                proc.wait(timeout=limits.grade_timeout + 120)
            except subprocess.TimeoutExpired:
                error = f"the grader's own time limit ({limits.grade_timeout + 120:g} s) ran out"
                _stop(proc)
            finally:
                with lock:
                    running.pop(name, None)
        _sweep(tag, L_OWNER)
        data: dict[str, Any] | None = None
        if error is None:
            with contextlib.suppress(OSError, ValueError):
                import json

                data = json.loads(results.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("kind") != "labcoat.grade":
            tail = (dest / "grader.log").read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
            error = error or f"the grader stopped (exit {proc.returncode})" + (f": {' / '.join(tail)}" if tail else "")
            bad = ungradable(lab, name, sub, error, duration=time.monotonic() - began)
            data = bad.to_dict()
            import json

            results.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        say(f"{name}: " + (f"{data.get('points')}/{data.get('max_points')}" if data.get("gradable") else "ungradable"))
        return data

    pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="labcoat-grade")
    try:
        futures = [pool.submit(one, sub, name) for sub, name in zip(folders, names, strict=True)]
        return [f.result() for f in futures]
    except BaseException:
        # Ctrl-C or SIGTERM: no new submission starts, running graders remove their sandboxes.
        stopping.set()
        with lock:
            procs = list(running.values())
        for proc in procs:
            _stop(proc)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _stop(proc: Any) -> None:
    """SIGTERM (the grader then removes its sandboxes, like Ctrl-C), SIGKILL if it will not end."""
    import subprocess

    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


def _sweep(tag: str, label: str) -> None:
    """Remove whatever a finished (or killed) grader process left with its owner label."""
    try:
        backend = grading_backend()
        for machine in backend.find({label: tag, "labcoat.kind": KIND}):
            with contextlib.suppress(LabError):
                backend.remove(machine)
    except LabError:
        pass
