"""`lab killercoda run DIR`: play a Killercoda scenario the way Killercoda does, in a stand-in VM.

The stand-in is a disposable container of the `killercoda-vm` image (Debian with Python 3,
root, 2 GiB, no network unless asked), labelled like every labcoat sandbox and removed at
the end whatever happens (Ctrl-C included). In it, in Killercoda's order:

1. the scenario folder is copied to /tmp/scenario and the assets are installed where
   `details.assets` says (`format.asset_install_script`);
2. the intro's `background` script starts hidden (setsid, output to a log), and its
   `foreground` script runs in the **learner's terminal**: sourced by one bash that has
   /etc/profile and whatever the terminal did before (exported variables and the current
   folder carry from one terminal command to the next, as in a real terminal);
3. the simulator waits for the setup (the intro background) to finish and records its exit
   status and the tail of its output;
4. each step: its `background` starts hidden, its `foreground` runs in the terminal; then its
   `verify` (bash, as root, from /root, outside the terminal, as Killercoda's Check button).
   With `--solutions` the verify must FAIL first, then the step's solution runs in the
   terminal and the verify must PASS (it is tried again for a few seconds, as a learner
   clicks Check again). **Gating**: a step whose verify does not pass stops the learner,
   so every later step is "not reached";
5. the finish page's scripts, if any.

A step without `verify` is follow-along (Killercoda lets the learner go on); with
`--solutions` its solution, when it has one, still runs, so later steps find its work.
"""

from __future__ import annotations

import contextlib
import shlex
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from labcoat.errors import UsageProblem
from labcoat.killercoda.format import (
    Page,
    Scenario,
    ScenarioError,
    asset_install_script,
    copy_scenario,
    read_scenario,
    read_text,
    validate_scenario,
)

VM_IMAGE = "killercoda-vm"
WHERE = "/tmp/scenario"
SIM = "/run/kcsim"
VM_MEMORY = 2 << 30  # Killercoda's ubuntu VM: 2 GB
TAIL = 1500  # characters of output kept per script

# statuses of a step
PASSED = "passed"  # verify passes (with --solutions: failed before, passed after the solution)
FOLLOW = "follow-along"  # no verify: nothing to check, the learner goes on
STUCK = "stuck"  # verify does not pass: the learner cannot go on
UNTOUCHED = "passes untouched"  # --solutions: verify passed before the solution (checks nothing)
NO_SOLUTION = "no solution"  # --solutions: nothing to run, verify still fails
NOT_REACHED = "not reached"  # after a step the learner cannot get past

Say = Callable[[str], Any]


@dataclass
class ScriptRun:
    """One script the simulator ran: where, how it ended, the tail of what it printed."""

    script: str
    where: str  # "background" (hidden) | "terminal" | "verify"
    exit: int | None  # None: still running when the wait ended
    seconds: float
    output: str = ""
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit == 0


@dataclass
class StepRun:
    n: int
    title: str
    status: str = NOT_REACHED
    seconds: float = 0.0
    verify: str | None = None
    before: int | None = None  # verify's exit before the solution (--solutions)
    after: int | None = None  # verify's exit at the end
    solution_from: str | None = None
    detail: str = ""
    scripts: list[ScriptRun] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status in (PASSED, FOLLOW)


@dataclass
class SimulationReport:
    scenario: str
    title: str
    imageid: str | None
    solutions: bool
    network: bool
    gating: bool = True
    setup: list[ScriptRun] = field(default_factory=list)
    steps: list[StepRun] = field(default_factory=list)
    finish: list[ScriptRun] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(s.ok for s in self.steps) and all(r.ok for r in self.setup)

    def to_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "title": self.title, "imageid": self.imageid,
                "solutions": self.solutions, "network": self.network, "gating": self.gating, "ok": self.ok,
                "seconds": round(self.seconds, 1),
                "setup": [_rounded(asdict(r)) | {"ok": r.ok} for r in self.setup],
                "steps": [_rounded(asdict(s)) | {"ok": s.ok} for s in self.steps],
                "finish": [_rounded(asdict(r)) for r in self.finish], "notes": self.notes}


def _rounded(data: dict[str, Any]) -> dict[str, Any]:
    data["seconds"] = round(data["seconds"], 2)
    for run in data.get("scripts", []):
        run["seconds"] = round(run["seconds"], 2)
    return data


@dataclass
class Timeouts:
    setup: float = 600.0  # the intro background, until it exits
    script: float = 300.0  # a foreground script or a solution in the terminal; a step background
    verify: float = 60.0  # one verify run
    verify_wait: float = 20.0  # after the solution, how long Check is clicked again until it passes


def _tail(text: str) -> str:
    from labcoat.killercoda.importer import safe_text

    text = safe_text(text.strip())
    return text if len(text) <= TAIL else "…" + text[-TAIL:]


class VM:
    """Runs scripts in the stand-in VM the way Killercoda does."""

    def __init__(self, backend: Any, machine: Any) -> None:
        self.backend, self.machine = backend, machine
        self.started: dict[str, float] = {}  # background tag -> when it started

    def sh(self, script: str, timeout: float = 60) -> Any:
        return self.backend.run(self.machine, ["/bin/bash", "-c", script], timeout=timeout)

    def terminal(self, rel: str | None, timeout: float, *, text: str | None = None) -> ScriptRun:
        """Source a scenario file (or `text`) in the learner's terminal; its shell state carries on."""
        name = rel or "(typed in the terminal)"
        if text is not None:
            self.backend.put_bytes(self.machine, text.encode(), f"{SIM}/typed.sh", 0o600)
            path = f"{SIM}/typed.sh"
        else:
            path = f"{WHERE}/{rel}"
        cmd = (f"mkdir -p {SIM}; export HOME=/root TERM=xterm; cd /root; "
               "[ -r /etc/profile ] && . /etc/profile >/dev/null 2>&1; "
               f"[ -r {SIM}/env ] && . {SIM}/env 2>/dev/null; "
               f"[ -r {SIM}/pwd ] && cd \"$(cat {SIM}/pwd)\" 2>/dev/null; "
               f"trap 'rc=$?; export -p > {SIM}/env; pwd > {SIM}/pwd; exit $rc' EXIT; "
               f". {shlex.quote(path)} </dev/null")
        began = time.monotonic()
        result = self.sh(cmd, timeout=timeout)
        return ScriptRun(name, "terminal", result.exit_status, time.monotonic() - began,
                         _tail(result.stdout + result.stderr), result.timed_out)

    def background(self, rel: str, tag: str) -> None:
        """Start a scenario script hidden, as Killercoda's background: output to a log, rc to a file."""
        log, rc = f"{SIM}/{tag}.log", f"{SIM}/{tag}.rc"
        inner = (f"cd /root; bash {shlex.quote(WHERE + '/' + rel)} >{log} 2>&1 </dev/null; echo $? > {rc}")
        self.sh(f"mkdir -p {SIM}; rm -f {rc}; setsid bash -c {shlex.quote(inner)} >/dev/null 2>&1 </dev/null &",
                timeout=30)
        self.started[tag] = time.monotonic()

    def wait_background(self, rel: str, tag: str, timeout: float) -> ScriptRun:
        """Wait until the background exits (at most `timeout` from its start); its time counts from its start."""
        began = self.started.get(tag, time.monotonic())
        code: int | None = None
        while True:
            done = self.sh(f"cat {SIM}/{tag}.rc 2>/dev/null", timeout=15)
            if done.succeeded and done.stdout.strip().lstrip("-").isdigit():
                code = int(done.stdout.strip())
                break
            if time.monotonic() - began >= timeout:
                break
            time.sleep(1)
        log = self.sh(f"tail -c {TAIL * 2} {SIM}/{tag}.log 2>/dev/null", timeout=15).stdout
        return ScriptRun(rel, "background", code, time.monotonic() - began, _tail(log), code is None)

    def verify(self, rel: str, timeout: float) -> ScriptRun:
        began = time.monotonic()
        result = self.sh(f"cd /root; export HOME=/root; bash {shlex.quote(WHERE + '/' + rel)} </dev/null",
                         timeout=timeout)
        return ScriptRun(rel, "verify", result.exit_status, time.monotonic() - began,
                         _tail(result.stdout + result.stderr), result.timed_out)


def step_solution(sc: Scenario, step: Page, n: int) -> tuple[str | None, str]:
    """The step's solution script and where it came from (as the importer finds it), or (None, why)."""
    from labcoat.killercoda.importer import ImportReport, find_solution

    text = (read_text(sc.root, step.text) or "") if step.text else ""
    return find_solution(sc, step, n, text, ImportReport(lab_id="", out=Path("."), title=""))


def _run_page_scripts(vm: VM, page: Page | None, tag: str, timeouts: Timeouts, say: Say) -> list[ScriptRun]:
    runs: list[ScriptRun] = []
    if page is None:
        return runs
    if page.background:
        say(f"{tag}: background {page.background} (hidden)")
        vm.background(page.background, tag)
    if page.foreground:
        say(f"{tag}: foreground {page.foreground} (in the terminal)")
        runs.append(vm.terminal(page.foreground, timeouts.script))
    if page.background:
        runs.insert(0, vm.wait_background(page.background, tag, timeouts.script if tag != "intro" else timeouts.setup))
    return runs


def simulate(src: Path, *, solutions: bool = False, network: bool = False, memory: int = VM_MEMORY,
             timeouts: Timeouts | None = None, backend: Any = None, image_dir: Path | None = None,
             progress: Say | None = None, keep: bool = False, gating: bool = True) -> SimulationReport:
    """Play the scenario in `src` in a fresh stand-in VM; see the module's docstring.

    `gating=False` goes on past a step whose verify does not pass (a learner could not): to
    measure every step of a scenario in one run.
    """
    say = progress or (lambda m: None)
    timeouts = timeouts or Timeouts()
    src = Path(src)
    try:
        sc = read_scenario(src)
    except ScenarioError as exc:
        raise UsageProblem(str(exc), hint="pass the folder that holds the scenario's index.json") from None
    problems = [p for p in validate_scenario(src, strict=False) if "has no `title`" not in p]
    if problems:
        raise UsageProblem("the scenario is not valid:\n  " + "\n  ".join(problems))
    report = SimulationReport(str(src), sc.title, sc.imageid, solutions, network, gating)
    if sc.imageid and sc.imageid not in ("ubuntu", "ubuntu-4GB"):
        report.notes.append(f"backend.imageid {sc.imageid!r}: played on the `ubuntu` stand-in (Debian, Python 3, "
                            "no Docker, no Kubernetes); what needs more fails here")
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kcsim-") as tmp:
        staged = Path(tmp) / "scenario"
        try:  # before any VM: a collision of assets or an oversized folder is the author's to fix
            install = asset_install_script(src, sc.data, WHERE)
            copy_scenario(src, staged)
        except ScenarioError as exc:
            raise UsageProblem(str(exc)) from None
        backend, machine = _start_vm(backend, image_dir, network, memory, say)
        try:
            say("copying the scenario and installing its assets")
            backend.put(machine, staged, "/tmp")
        except BaseException:
            with contextlib.suppress(Exception):
                backend.remove(machine)
            raise
    try:
        vm = VM(backend, machine)
        assets = vm.sh(install, timeout=120)
        if assets.failed:
            report.setup.append(ScriptRun("assets", "background", assets.exit_status, assets.duration,
                                          _tail(assets.stdout + assets.stderr)))
        report.setup += _run_page_scripts(vm, sc.intro, "intro", timeouts, say)
        for run in report.setup:
            if run.where == "background":
                say(f"setup {run.script}: " + (f"exit {run.exit}" if run.exit is not None else
                                               f"still running after {run.seconds:.0f} s"))
        blocked = False
        for i, step in enumerate(sc.steps):
            n = i + 1
            row = StepRun(n, step.title or f"Step {n}", verify=step.verify)
            report.steps.append(row)
            if blocked:
                continue
            t0 = time.monotonic()
            say(f"step {n}: {row.title}")
            row.scripts += _run_page_scripts(vm, step, f"step{n}", timeouts, say)
            _play_step(vm, sc, step, row, solutions, timeouts)
            row.seconds = time.monotonic() - t0
            say(f"step {n}: {row.status} ({row.seconds:.1f} s)")
            blocked = gating and not row.ok
        if not blocked:
            report.finish = _run_page_scripts(vm, sc.finish, "finish", timeouts, say)
    finally:
        if not keep:
            with contextlib.suppress(Exception):
                backend.remove(machine)
        elif machine is not None:
            report.notes.append(f"the stand-in VM is kept: {machine.name} (docker rm -f it when done)")
    report.seconds = time.monotonic() - began
    return report


def _play_step(vm: VM, sc: Scenario, step: Page, row: StepRun, solutions: bool, timeouts: Timeouts) -> None:
    if not step.verify:
        row.status = FOLLOW
        if solutions:
            script, row.solution_from = step_solution(sc, step, row.n)
            if script is not None:
                row.scripts.append(vm.terminal(None, timeouts.script, text=script))
        return
    if not solutions:
        run = vm.verify(step.verify, timeouts.verify)
        row.scripts.append(run)
        row.after = run.exit
        row.status = PASSED if run.ok else STUCK
        row.detail = "" if run.ok else f"verify exits {run.exit}: {run.output[-300:]}"
        return
    first = vm.verify(step.verify, timeouts.verify)
    row.scripts.append(first)
    row.before = first.exit
    script, row.solution_from = step_solution(sc, step, row.n)
    if script is not None:
        sol = vm.terminal(None, timeouts.script, text=script)
        sol.script = f"solution ({row.solution_from})"
        row.scripts.append(sol)
    deadline = time.monotonic() + timeouts.verify_wait
    while True:
        last = vm.verify(step.verify, timeouts.verify)
        if last.ok or time.monotonic() >= deadline:
            break
        time.sleep(2)
    row.scripts.append(last)
    row.after = last.exit
    if not last.ok:
        row.status = NO_SOLUTION if script is None else STUCK
        row.detail = f"verify exits {last.exit} after the solution: {last.output[-300:]}"
    elif first.ok:
        row.status = UNTOUCHED
        row.detail = "verify passes before the solution ran: it does not check the step's task"
    else:
        row.status = PASSED


class ThisMachine:
    """The executor of `--on-this-machine`: the scenario's scripts run right here, as root.

    Only for a disposable VM (the `v2-local` lane): assets land in /opt, /usr/local/bin,
    /root, ...; what the scenario starts keeps running. Same interface as a backend.
    """

    name = "this machine"

    def run(self, machine: Any, argv: list[str], *, timeout: float | None = 60, **_: Any) -> Any:
        import os
        import signal
        import subprocess

        from labcoat.backends.base import CommandResult

        began = time.monotonic()
        # a login's environment, not labcoat's: the scenario sees what Killercoda's scripts see
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
               "LANG": "C.UTF-8", "USER": "root"}
        # ...but a slow (emulated) machine stays slow: labcoat's limits are stretched there as everywhere
        if os.environ.get("LABCOAT_TIME_SCALE"):
            env["LABCOAT_TIME_SCALE"] = os.environ["LABCOAT_TIME_SCALE"]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                start_new_session=True, text=True, errors="replace", env=env)
        try:
            out, err = proc.communicate(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            timed_out = True
        code = 124 if timed_out else proc.returncode
        return CommandResult(code, out, err, time.monotonic() - began, timed_out)

    def put(self, machine: Any, src: Path, dest: str) -> None:
        target = Path(dest) / Path(src).name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(src, target, symlinks=True)

    def put_bytes(self, machine: Any, data: bytes, dest: str, mode: int = 0o644) -> None:
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        Path(dest).write_bytes(data)
        Path(dest).chmod(mode)

    def remove(self, machine: Any) -> None:
        """Nothing to remove: the VM itself is the disposable thing."""


def _start_vm(backend: Any, image_dir: Path | None, network: bool, memory: int, say: Say) -> tuple[Any, Any]:
    from labcoat.backends.base import MachineSpec
    from labcoat.content.loader import load_model
    from labcoat.content.models import Image
    from labcoat.runner.session import labels_for

    if isinstance(backend, ThisMachine):
        import os

        if os.geteuid() != 0:
            raise UsageProblem("--on-this-machine runs the scenario as root, as Killercoda does", hint="run it as root")
        say("playing the scenario on this machine itself (a disposable VM)")
        return backend, None
    if backend is None:
        from labcoat.backends import DEFAULT_BACKEND, get_backend

        backend = get_backend(DEFAULT_BACKEND)
    image_dir = image_dir or default_vm_dir()
    say("the stand-in VM image (built once, about two minutes)")
    image = load_model(Image, image_dir / "image.yaml")
    tag = backend.ensure_image(image.id, image, image_dir)
    spec = MachineSpec(image=tag, memory=memory, pids_limit=4096, hostname="ubuntu", network=network)
    machine = backend.start(spec, labels_for("killercoda-vm"))
    return backend, machine


def default_vm_dir() -> Path:
    from labcoat.content.catalog import default_content_root

    for root in (default_content_root(), Path(__file__).resolve().parents[1] / "_content"):
        if (root / "images" / VM_IMAGE / "image.yaml").is_file():
            return root / "images" / VM_IMAGE
    raise UsageProblem(f"no images/{VM_IMAGE}/image.yaml in the content folder",
                       hint="the stand-in VM's recipe ships with labcoat's content")
