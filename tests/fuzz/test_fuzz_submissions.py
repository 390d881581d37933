"""Fuzz: `lab grade 5.3 --submission DIR` on a mutated submission folder, up to where Docker would start.

The folder starts as a complete, right submission (the reference solutions as `PART.sh`, a
valid `quiz.yaml`); one mutation then changes a file's text or bytes, cuts it, replaces the
whole file, or puts a symlink (to a secret planted next to the folder, to /dev/zero, dangling,
a loop), a FIFO or a folder where a file was; or the folder gets a hostile name. `lab grade`
runs in-process in a forked child, the real command down to the parts' sandboxes: reading the
submission (`Submission.read`), the quiz (`load_answers`, scored), the parts without work (zero
with a named reason), the reports (terminal, JSON, JUnit). Only the Docker stage is replaced:
each part with work "runs" by echoing its script back as its output (a student controls that
output too) and scores 0. Whatever the mutation: a documented exit code, the submission stays
gradable (a student's file is never an infrastructure failure), no traceback, no escape
sequence, within the deadline, nothing opened outside the submission, the content, the
output folder and the host facts `lab grade` reads (/proc, /sys), and the secret in no report.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fuzz_harness import ROOT, fuzz_settings, leaked, plant_secret, run_forked
from hostile_inputs import SECRET, SPECIAL, Mutation, mutations
from hypothesis import example, given
from hypothesis import strategies as st

SOLUTIONS = ROOT / "labs" / "5.3" / "solutions"
QUIZ_ANSWERS = Path(__file__).with_name("answers-ok.yaml")
FILES = sorted(p.name for p in SOLUTIONS.glob("*.sh")) + ["quiz.yaml"]
CONTENT = [ROOT / d for d in ("labs", "checks", "scenarios", "quizzes", "images")]
HOST_FACTS = [Path("/proc"), Path("/sys")]  # CPUs, memory, PSI: what the grader checks of its own host
GRADE_CODES = {0, 1}  # passed / failed (README "Exit codes"); 3 would be "ungradable": never for a student's file
NAMES = ["student", "\x1b[2J\x1b]0;pwned\x07", "[/]", "[bold red]x[/]", "-rf", "a b\tc", "\u202eevil",
         "x" * 255, "caf\u00e9", "\U0001f600", "$(id)", "'; DROP"]


def _stub_docker_stage(monkeypatch: pytest.MonkeyPatch) -> None:
    """Everything of `lab grade` runs but the sandboxes: a part with work echoes its script and scores 0."""
    from labcoat.grading import capacity, grade, results

    class NoSandboxes:
        def __init__(self, backend, catalog, lab, owner, token, seed, student, limits) -> None:
            self.catalog, self.seed, self.backend = catalog, seed, type("B", (), {"supports": {}})()

        def start(self, parts, prepare=False) -> None:
            pass

        def remove(self) -> None:
            pass

    def graded(gs, run_parts, sub, say, out) -> None:
        for part in run_parts:
            text = sub.scripts[part.id] or ""
            checks = results.zero_part(part, results.static_checks(gs.catalog, part), "not run (fuzz)").checks
            out[part.id] = results.GradedPart(part.id, part.title, "failed", checks, reason="not run (fuzz)",
                                              script=results.ScriptRun(f"{part.id}.sh", True, ran=True, exit_status=0,
                                                                       output=text[:10_000],
                                                                       output_bytes=len(text)))

    monkeypatch.setattr(grade, "GradeSession", NoSandboxes)
    monkeypatch.setattr(grade, "_grade_sandboxes", graded)
    monkeypatch.setattr(grade, "grading_backend", lambda: None)
    monkeypatch.setattr(capacity, "preflight", lambda *a, **k: None)
    monkeypatch.setattr(capacity, "shortage", lambda *a, **k: None)


def _submission(folder: Path) -> None:
    folder.mkdir(parents=True)
    for script in SOLUTIONS.glob("*.sh"):
        shutil.copyfile(script, folder / script.name)
    shutil.copyfile(QUIZ_ANSWERS, folder / "quiz.yaml")


@fuzz_settings(default=16)
@given(mutation=st.one_of(mutations(FILES), st.builds(Mutation, file=st.sampled_from(FILES), kind=st.just("special"),
                                                      payload=st.sampled_from(SPECIAL))),
       name=st.sampled_from(NAMES[:1] * 6 + NAMES))
@example(mutation=Mutation("part1.sh", "special", payload="secret"), name="student")
@example(mutation=Mutation("quiz.yaml", "special", payload="secret"), name="student")
@example(mutation=Mutation("part2.sh", "special", payload="dev-zero"), name="student")
@example(mutation=Mutation("part3.sh", "special", payload="fifo"), name="student")
@example(mutation=Mutation("quiz.yaml", "special", payload="fifo"), name="student")
@example(mutation=Mutation("part1.sh", "special", payload="loop"), name="\x1b[2J\x1b]0;pwned\x07")
@example(mutation=Mutation("part4.sh", "special", payload="directory"), name="[/]")
@example(mutation=Mutation("part1.sh", "append", payload="printf '\\033[2J'; echo \x1b[31m[/]\x9b"), name="student")
# found by the long run of 2 December (session 6): DEL from a script's output in `lab grade --json -`
@example(mutation=Mutation("part4.sh", "bytes", line=1252, raw=b"\xc9\x057\x7f\x10\x9c\xbf\xc5"), name="student")
def test_submission_folders(cli, scratch, warm, monkeypatch, mutation: Mutation, name: str) -> None:
    _stub_docker_stage(monkeypatch)
    warm_dir = scratch()
    _submission(warm_dir / "warm")
    warm(["--content", str(ROOT), "--backend", "docker", "grade", "5.3", "--submission", str(warm_dir / "warm"),
          "--json", str(warm_dir / "r.json"), "--junit", str(warm_dir / "j.xml"), "-q"])
    base = scratch()
    secret = plant_secret(base, SECRET)
    folder = base / "class" / name.replace("/", "_")
    _submission(folder)
    mutation.apply(folder, secret)
    out = base / "out"
    out.mkdir()

    def case() -> list[tuple[int, str, str]]:
        runs = []
        for extra in (["--json", str(out / "r.json"), "--junit", str(out / "j.xml")], ["--json", "-"]):
            result = cli("--content", str(ROOT), "--backend", "docker", "grade", "5.3", "--submission", str(folder),
                         *extra)
            runs.append((result.exit_code, result.stdout, result.stderr))
        return runs

    outcome = run_forked(case, allowed=[folder, out, *CONTENT, *HOST_FACTS])
    outcome.check(f"{name!r}: {mutation}", GRADE_CODES, extra=leaked(out) + ungradable(out / "r.json"))


def ungradable(report: Path) -> list[str]:
    """A student's file must never make the submission ungradable (that is the grader's failure)."""
    if not report.is_file():
        return []  # the case crashed or hung: reported already
    data = json.loads(report.read_text(encoding="utf-8"))
    return [] if data.get("gradable") else [f"ungradable: {data.get('error')}"]
