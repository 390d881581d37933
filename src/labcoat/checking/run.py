"""Run a lab's checks (pytest-testinfra files) in-process and collect one result per check.

Results come from pytest's hooks, never from parsing its output. A check's verdict is:
passed; failed (an AssertionError: the learner's work is not there yet); skipped (the
host cannot show this, e.g. no PSI: the reason is shown); or error (anything else: an
infrastructure problem, reported as such and never as the learner's failure).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from labcoat.testing import CheckFailed, SandboxInfo

if TYPE_CHECKING:
    from labcoat.content.catalog import Catalog
    from labcoat.content.models import Lab, Part
    from labcoat.runner.session import LabSession, Sandbox

INI = Path(__file__).with_name("checks.ini")
_checks_root: list[Path] = []  # the checks folder whose modules this process has imported, if any


@dataclass
class CheckResult:
    part: str
    check: str
    title: str
    status: str  # passed | failed | skipped | error
    points: float
    max_points: float
    expected: str | None = None
    found: str | None = None
    hint: str | None = None
    message: str | None = None
    duration: float = 0.0
    truth: str | None = None  # the live figure the check compared with: for instructors only (see to_dict)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self, reveal: bool = True) -> dict[str, Any]:
        """As JSON. `reveal=False` leaves out the truth: what a learner may see (`lab check --json`)."""
        data = {**asdict(self), "passed": self.passed}
        if not reveal:
            data.pop("truth")
        return data


@dataclass
class PartResult:
    part: str
    title: str
    checks: list[CheckResult] = field(default_factory=list)
    skipped_reason: str | None = None

    @property
    def status(self) -> str:
        if self.skipped_reason or (self.checks and all(c.status == "skipped" for c in self.checks)):
            return "skipped"
        if any(c.status == "error" for c in self.checks):
            return "error"
        if not self.checks:
            return "error"
        return "passed" if all(c.status in ("passed", "skipped") for c in self.checks) else "failed"

    @property
    def points(self) -> float:
        return sum(c.points for c in self.checks)

    @property
    def max_points(self) -> float:
        return sum(c.max_points for c in self.checks)

    def to_dict(self, reveal: bool = True) -> dict[str, Any]:
        return {"part": self.part, "title": self.title, "status": self.status, "points": self.points,
                "max_points": self.max_points, "skipped_reason": self.skipped_reason,
                "checks": [c.to_dict(reveal) for c in self.checks]}


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


class Collector:
    """The pytest plugin object: provides `host` and `sandbox`, records every check's outcome."""

    def __init__(self, targets: dict[str, tuple[Any, SandboxInfo]], part_of: dict[str, str]) -> None:
        self.targets = targets  # check file (resolved) -> (testinfra Host, SandboxInfo) of its part's sandbox
        self.part_of = part_of  # check file (resolved) -> part id
        self.results: list[CheckResult] = []
        self.collect_errors: list[str] = []
        self._seen: set[str] = set()

    # Module scope: one check file is one part, and a part's checks all look at its sandbox,
    # so every part of a lab runs in one pytest session whatever sandbox it lives in.
    @pytest.fixture(scope="module")
    def host(self, request: pytest.FixtureRequest) -> Any:
        return self.targets[str(Path(str(request.path)).resolve())][0]

    @pytest.fixture(scope="module")
    def sandbox(self, request: pytest.FixtureRequest) -> SandboxInfo:
        return self.targets[str(Path(str(request.path)).resolve())][1]

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collect_errors.append(f"{report.nodeid}: {report.longreprtext.strip()[-800:]}")

    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> None:
        # One result per check: its call phase, or the setup phase when that already failed or skipped.
        if item.nodeid in self._seen:
            return
        if call.when == "call" or (call.when == "setup" and call.excinfo is not None):
            self._seen.add(item.nodeid)
            self.results.append(self._result(item, call))

    def _result(self, item: pytest.Item, call: pytest.CallInfo[None]) -> CheckResult:
        doc = (getattr(item, "obj", None).__doc__ or "").strip().splitlines() if hasattr(item, "obj") else []
        title = doc[0] if doc else item.name.removeprefix("test_").replace("_", " ")
        part = self.part_of.get(str(Path(str(item.path)).resolve()), "?")
        result = CheckResult(part=part, check=item.name, title=title, status="passed", points=0, max_points=0,
                             duration=call.duration)
        exc = call.excinfo
        if exc is None:
            return result
        if exc.errisinstance(pytest.skip.Exception):
            result.status, result.message = "skipped", str(exc.value.msg if hasattr(exc.value, "msg") else exc.value)
        elif exc.errisinstance(CheckFailed):
            err: CheckFailed = exc.value
            result.status = "failed"
            result.expected, result.found, result.hint = _text(err.expected), _text(err.found), err.hint
            result.truth = _text(getattr(err, "truth", None))
            result.message = str(err)
        elif exc.errisinstance(AssertionError):
            result.status = "failed"
            message = str(exc.value).split("\nassert ")[0].strip()
            result.found = message or "the check's condition did not hold"
            result.message = message
        else:
            result.status = "error"
            result.message = f"{exc.typename}: {exc.value}"
        return result


def sandbox_info(sandbox: Sandbox, memory_limit: int, answers_dir: str = "/root/answers") -> SandboxInfo:
    """The `sandbox` fixture's value for a running sandbox."""
    from labcoat.runner.records import load_record

    backend, machine = sandbox.backend, sandbox.machine
    containers = LearnerContainers(backend, sandbox.learner_names)

    def read_answers(part_id: str) -> str:
        result = backend.run(machine, ["cat", f"{answers_dir}/{part_id}.txt"], timeout=10)
        return result.stdout if result.succeeded else ""

    def host_reader() -> Any:
        from labcoat.cgroup_host import read_sandbox_cgroup

        return read_sandbox_cgroup(backend, machine)

    from labcoat.hostinfo import cgroup_version

    return SandboxInfo(
        lab_id=sandbox.lab_id, name=machine.name, seed=sandbox.seed, memory_limit=memory_limit,
        backend=backend.name, cgroup_version=cgroup_version(), answers_dir=answers_dir,
        _host_reader=host_reader, _records=lambda name: load_record(machine.id, name), _answers=read_answers,
        _inspect=containers.inspect, _container_cgroup=containers.cgroup,
    )


class LearnerContainers:
    """Containers the learner started on the host, looked up once per `lab check` through one client."""

    def __init__(self, backend: Any, names: dict[str, str] | None = None) -> None:
        self._backend = backend
        self._names = names  # when graded: only the containers the grading proxy created, by their asked-for name
        self._seen: dict[str, dict[str, Any] | None] = {}

    def inspect(self, name: str) -> dict[str, Any] | None:
        """`docker inspect NAME`, or None when there is no such container."""
        if name not in self._seen:
            # With the local backend (e.g. a Killercoda VM) the backend asks the host's Docker.
            if self._names is not None and name not in self._names:
                self._seen[name] = None
            else:
                self._seen[name] = self._backend.inspect_named(self._names[name] if self._names is not None else name)
        return self._seen[name]

    def cgroup(self, name: str) -> Any:
        """A MemorySnapshot of that container, read from the host (None when it is not running)."""
        from labcoat import cgroup
        from labcoat.cgroup_host import read_dir

        pid = (self.inspect(name) or {}).get("State", {}).get("Pid")
        if not pid:
            return None
        directory = cgroup.host_cgroup_dir(pid)
        psi = cgroup.host_psi_path(pid)
        return cgroup.parse_snapshot(read_dir(Path(directory), Path(psi) if psi else None)) if directory else None


def run_checks(catalog: Catalog, session: LabSession, lab: Lab, parts: list[Part]) -> list[PartResult]:
    """Run the checks of `parts`, each against its part's sandbox; one PartResult per part, in order."""
    from labcoat.hostinfo import missing

    results: dict[str, PartResult] = {p.id: PartResult(p.id, p.title) for p in parts}
    runnable: list[Part] = []
    for part in parts:
        lacking = missing(part.requires)
        if part.follow_along:
            results[part.id].skipped_reason = "a follow-along step: there is nothing to verify here"
        elif lacking:
            results[part.id].skipped_reason = "; ".join(f.detail for f in lacking)
        else:
            runnable.append(part)
    if runnable:
        for r in _run_pytest(catalog, session, lab, runnable):
            results[r.part].checks.append(r)
    for part in parts:
        assign_points(part, results[part.id])
    return [results[p.id] for p in parts]


def forget_other_checks(root: Path) -> None:
    """Before running the checks of `root`, drop the check modules another content folder left.

    pytest imports check files (and their helpers, e.g. `from lab53 import ...`) as top-level
    modules by basename. In one process (`lab selftest` then a second `--content`, the test suite,
    anything that is not the warm server's fresh fork) a second folder with the same names would
    get pytest's "import file mismatch", reported as a content error, or worse, silently reuse the
    first folder's helper module. The modules and sys.path entries under the old folder go.
    """
    root = root.resolve()
    if _checks_root and _checks_root[0] != root:
        old = _checks_root[0]
        for name, module in list(sys.modules.items()):
            where = getattr(module, "__file__", None)
            if where and Path(where).is_relative_to(old):
                del sys.modules[name]
        sys.path[:] = [entry for entry in sys.path if not (entry and Path(entry).is_relative_to(old))]
    _checks_root[:] = [root]


def _run_pytest(catalog: Catalog, session: LabSession, lab: Lab, parts: list[Part]) -> list[CheckResult]:
    from labcoat.checking.testinfra_backend import make_host

    forget_other_checks(catalog.root / "checks")

    files = {str(catalog.checks_file(p).resolve()): p.id for p in parts}
    hosts: dict[str, Any] = {}
    targets = {}
    for path, part_id in files.items():
        part = lab.part(part_id)
        sandbox = session.for_part(part_id)
        if sandbox.machine.id not in hosts:
            hosts[sandbox.machine.id] = make_host(sandbox.backend, sandbox.machine)
        spec = part.sandbox or lab.sandbox
        targets[path] = (hosts[sandbox.machine.id], sandbox_info(sandbox, spec.memory_bytes))
    collector = Collector(targets, files)
    # testinfra's own plugin would parametrize `host` with the local machine: ours provides it.
    args = ["-c", str(INI), "--rootdir", str(catalog.root / "checks"), "-q", "--tb=no", "-p", "no:pytest11.testinfra",
            "-p", "no:doctest", "-p", "no:junitxml", "-p", "no:pastebin",
            # These two call gc.collect() at the end of every session (~0.1 s): a check never needs them.
            "-p", "no:unraisableexception", "-p", "no:threadexception", *files]
    out = io.StringIO()
    # No entry-point plugin scan: faster, and only our plugin provides fixtures to checks.
    saved = os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            pytest.main(args, plugins=[collector])
    finally:
        if saved is None:
            os.environ.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
        else:
            os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = saved
    if collector.collect_errors:
        from labcoat.errors import ContentError

        raise ContentError("the check files could not be loaded:\n" + "\n".join(collector.collect_errors),
                           hint="this is a problem in the lab's content; run `lab validate`")
    return collector.results


def assign_points(part: Part, result: PartResult) -> None:
    """Points per check: those named in check_points, the rest of the part's points shared equally."""
    named = {c.check: part.check_points[c.check] for c in result.checks if c.check in part.check_points}
    others = [c for c in result.checks if c.check not in named]
    share = (part.points - sum(named.values())) / len(others) if others else 0.0
    for c in result.checks:
        c.max_points = float(named.get(c.check, share))
        c.points = c.max_points if c.status == "passed" else 0.0
    if result.skipped_reason:
        result.checks.append(CheckResult(part=part.id, check="(part)", title=part.title, status="skipped",
                                         points=0.0, max_points=0.0, message=result.skipped_reason))
