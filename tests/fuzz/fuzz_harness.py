"""The fuzz harness: every case runs the real CLI in a forked child that cannot hang the suite.

Each case forks. The child (which inherits everything already imported) installs an
audit hook that records every file opened, caps its address space, runs `lab ...`
in-process through the `cli` fixture of tests/conftest.py and reports back through a
file. The parent waits at most LABCOAT_FUZZ_TIMEOUT seconds (default 20) and kills a
child that is still running: a hang fails the case, even one stuck in C code (e.g.
Python computing 10**999999999), which `signal.alarm` could not interrupt.

Budget: LABCOAT_FUZZ_EXAMPLES=N runs N cases per target (default: the small CI budget
in each test). CI draws the same cases every run (derandomized); LABCOAT_FUZZ_RANDOM=1
draws new ones (a failure prints a blob for @reproduce_failure). LABCOAT_FUZZ_COLLECT=F
records every case in F (JSON lines) and fails each test at its end, so a long run
counts all failures instead of stopping at the first; LABCOAT_FUZZ_SHRINK=1 shrinks a
failing case. See docs/authoring.md, "Fuzzing".
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
CONTENT_DIRS = ("labs", "checks", "scenarios", "quizzes", "images")
# Exit codes a command may end with on hostile input (README "Exit codes"); 70 is a bug.
DOCUMENTED = {0, 1, 2, 3, 4, 5}
TIMEOUT = float(os.environ.get("LABCOAT_FUZZ_TIMEOUT", "20"))
COLLECT = os.environ.get("LABCOAT_FUZZ_COLLECT")  # a JSON-lines file: every case recorded, failures counted
BAIT = "root:x:0:0:secret"  # what the secret file planted next to the input folder holds
MEMORY_CAP = 1536 * 1024 * 1024  # address space a case may add on top of what the suite already uses


def examples(default: int) -> int:
    return int(os.environ.get("LABCOAT_FUZZ_EXAMPLES", default))


def fuzz_settings(default: int) -> Any:
    """Hypothesis settings: a fixed budget and seed in CI, more on request; our own per-case deadline."""
    from hypothesis import HealthCheck, Phase, settings

    fixed = not os.environ.get("LABCOAT_FUZZ_RANDOM")
    return settings(
        max_examples=examples(default),
        deadline=None,  # each case has the harder deadline of the forked child
        database=None,  # nothing written into the checkout
        derandomize=fixed,  # CI: the same cases every run; a failure reproduces
        # No shrinking unless asked: a case is one readable mutation already, and shrinking a hang costs the
        # deadline per attempt.
        phases=(Phase.explicit, Phase.generate, *((Phase.shrink,) if os.environ.get("LABCOAT_FUZZ_SHRINK") else ())),
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )


# What must never reach a terminal: C0 controls but tab and newline (ESC, BEL, CR, backspace...), DEL
# and C1 controls (U+009B is a one-character CSI): the set labcoat.report.terminal replaces.
_TERMINAL_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

@dataclass
class Outcome:
    """What one case did."""

    exit_codes: list[int] = field(default_factory=list)  # one per command the case ran
    stdout: str = ""
    stderr: str = ""
    outside: list[str] = field(default_factory=list)  # files opened outside the allowed folders
    crash: str | None = None  # a Python exception that escaped the CLI itself
    hang: bool = False
    seconds: float = 0.0

    def problems(self, codes: set[int] = DOCUMENTED) -> list[str]:
        out = []
        if self.hang:
            out.append(f"hang: still running after {TIMEOUT:g} s")
        if self.crash:
            out.append(f"crash: {self.crash[-1500:]}")
        bad = [c for c in self.exit_codes if c not in codes]
        if bad:
            out.append(f"exit code(s) {bad} not in {sorted(codes)}")
        text = self.stdout + self.stderr
        if "Traceback" in text:
            out.append("traceback in the output")
        control = _TERMINAL_CONTROL.search(text)
        if control:
            out.append(f"a terminal control character (U+{ord(control.group()):04X}) reached the output")
        if BAIT in text:
            out.append("the secret planted outside the input folder was printed")
        if self.outside:
            out.append(f"read outside the allowed folders: {sorted(set(self.outside))[:5]}")
        return out

    def check(self, what: str, codes: set[int] = DOCUMENTED, extra: list[str] | None = None) -> None:
        """Fail (or, with LABCOAT_FUZZ_COLLECT, record) the case when anything went wrong."""
        problems = self.problems(codes) + (extra or [])
        if COLLECT:  # the long run: record every case, fail at the end of the test (conftest `collected`)
            with open(COLLECT, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"test": os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0],
                                     "case": what[:20_000] if problems else what[:300], "problems": problems, "seconds": round(self.seconds, 3),
                                     "exits": self.exit_codes}) + "\n")
            return
        if problems:
            pytest.fail(f"{what}: " + "; ".join(problems)
                        + f"\nexits {self.exit_codes}\nstdout: {self.stdout[-1500:]}\nstderr: {self.stderr[-1500:]}")


def _allowed_roots(extra: list[Path]) -> list[str]:
    """Folders a case may read: the input it was given, and the tool's own installation."""
    import hypothesis

    import labcoat

    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.__file__),
             str(Path(labcoat.__file__).resolve().parent), str(Path(hypothesis.__file__).resolve().parent),
             "/dev/null", "/dev/urandom", "/proc/self", "/etc/localtime", "/usr/share/zoneinfo",
             "/usr/lib/locale", "/etc/ld.so.cache", "/usr/lib/python3", "/usr/local/lib/python3"}
    roots |= {os.path.realpath(p) for p in sys.path if p and os.path.isdir(p) and not p.startswith(str(ROOT))}
    roots |= {os.environ[v] for v in ("LABCOAT_STATE", "XDG_CACHE_HOME") if os.environ.get(v)}  # the tool's own
    roots |= {os.path.realpath(p) for p in extra}
    return sorted(os.path.realpath(r) for r in roots)


def _inside(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


Run = tuple[int, str, str]  # exit code, stdout, stderr of one command


def run_forked(case: Callable[[], list[Run]], allowed: list[Path]) -> Outcome:
    """Run `case` (a few commands) in a forked child with an audit hook, a memory cap and a deadline."""
    roots = _allowed_roots(allowed)
    fd, report = tempfile.mkstemp(prefix="labcoat-fuzz-", suffix=".json")
    os.close(fd)
    # The child's empty working folder, made here so that the parent removes it when the case ends
    # (the child leaves through os._exit, or is killed).
    cwd = tempfile.mkdtemp(prefix="labcoat-fuzz-cwd-")
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        status = 0
        try:
            _child(case, roots, report, cwd)
        except BaseException:  # noqa: BLE001 - the child must always reach os._exit
            status = 1
        finally:
            os._exit(status)
    outcome = Outcome()
    while True:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() - start > TIMEOUT:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            outcome.hang = True
            break
        time.sleep(0.005)
    outcome.seconds = time.monotonic() - start
    try:
        if not outcome.hang:
            data = json.loads(Path(report).read_text(encoding="utf-8") or "{}")
            if not data:
                outcome.crash = "the child died without a report (a signal, or out of memory)"
            else:
                runs = data["runs"]
                outcome.exit_codes = [r[0] for r in runs]
                outcome.stdout = "\n".join(r[1] for r in runs)
                outcome.stderr = "\n".join(r[2] for r in runs)
                outcome.outside, outcome.crash = data["outside"], data["crash"]
    finally:
        os.unlink(report)
        shutil.rmtree(cwd, ignore_errors=True)
    return outcome


def _child(case: Callable[[], list[Run]], roots: list[str], report: str, cwd: str) -> None:
    outside: list[str] = []
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as fh:
        used = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (used + MEMORY_CAP, hard))

    # An empty working folder: a relative name that does not exist here was opened relative to a folder's
    # descriptor (shutil.rmtree and os.fwalk open entries by name with dir_fd), not relative to this folder.
    os.chdir(cwd)

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event != "open" or not args or isinstance(args[0], int) or args[0] is None:
            return
        path = os.fsdecode(args[0])
        if not os.path.isabs(path) and not os.path.lexists(path):
            return
        real = os.path.realpath(path)
        if not _inside(real, roots):
            outside.append(real)

    sys.addaudithook(hook)
    result: dict[str, Any] = {"runs": [], "crash": None}
    try:
        result["runs"] = case()
    except BaseException:  # noqa: BLE001 - reported to the parent as a failure
        result["crash"] = traceback.format_exc()
    result["outside"] = outside[:50]
    with open(report, "w", encoding="utf-8") as fh:  # our own report file: inside tempfile's folder
        json.dump(result, fh, ensure_ascii=True)


def plant_secret(base: Path, name: str) -> Path:
    """The bait: a file outside the input folder that no case may read."""
    secret = base / name
    secret.write_text(BAIT + "\n")
    return secret


def leaked(folder: Path) -> list[str]:
    """Problems when the bait was copied into `folder` (e.g. an import's output)."""
    found = [str(p) for p in folder.rglob("*") if p.is_file() and not p.is_symlink()
             and BAIT in p.read_text(encoding="utf-8", errors="replace")] if folder.is_dir() else []
    return [f"the secret was copied into {found[:3]}"] if found else []


def copy_content(dest: Path) -> Path:
    """A copy of the real course content (labs/ checks/ scenarios/ quizzes/ images/) under dest/content."""
    root = dest / "content"
    for name in CONTENT_DIRS:
        shutil.copytree(ROOT / name, root / name, symlinks=True)
    return root
