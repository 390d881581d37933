"""`lab grade`'s reports and pure logic, without Docker: synthetic results in, every format out.

JUnit must parse with xml.etree (even with hostile output in it), the JSON shapes must be
what Gradescope and PrairieLearn read, an ungradable result must never look like a zero,
and the template, the quiz and an empty submission need no sandbox at all.
"""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from labcoat.checking.run import CheckResult
from labcoat.content.catalog import Catalog
from labcoat.grading import reports
from labcoat.grading.batch import student_names
from labcoat.grading.results import (
    Grade,
    GradedPart,
    QuizGrade,
    ScriptRun,
    grade_quiz,
    static_checks,
    zero_part,
)
from labcoat.grading.submission import (
    HOST_ONLY,
    QUIZ_FILE,
    Submission,
    has_work,
    layout,
    safe_name,
    template_files,
)

ROOT = Path(__file__).resolve().parents[2]
ANSWERS = ROOT / "tests" / "unit" / "quiz" / "answers"
HOSTILE = "evil\x00output \x1b[31mred\x1b[0m ]]> </system-out> & | `::error::` \ufffe"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load(ROOT)


def check(part: str, name: str, status: str, points: float, max_points: float, **kw: object) -> CheckResult:
    return CheckResult(part=part, check=name, title=f"{name} title", status=status, points=points,
                       max_points=max_points, **kw)  # type: ignore[arg-type]


def synthetic(*, gradable: bool = True, quiz_points: float = 15.0) -> Grade:
    """Part 1 full marks, part 2 partial with a hostile 'found', a not-graded host part, and a quiz."""
    part1 = GradedPart("part1", "Free vs available", "passed",
                       [check("part1", "test_a", "passed", 12, 12), check("part1", "test_b", "passed", 8, 8)],
                       script=ScriptRun("part1.sh", True, ran=True, exit_status=0, duration=0.4, output="ok\n",
                                        output_bytes=3))
    part2 = GradedPart("part2", "Page cache", "failed",
                       [check("part2", "test_size", "passed", 5, 5),
                        check("part2", "test_cache", "failed", 0, 15, expected="64 MiB | resident",
                              found=HOSTILE, hint="read it again")],
                       script=ScriptRun("part2.sh", True, ran=True, exit_status=124, duration=60.0, timed_out=True,
                                        output=HOSTILE * 3, output_bytes=65536, truncated=True, leftover_processes=3,
                                        note="stopped after 60 s"))
    part5 = GradedPart("part5", "Container memory limits", "not_graded", reason=HOST_ONLY,
                       script=ScriptRun("part5.sh", True, note="never run: " + HOST_ONLY))
    quiz = QuizGrade("5.3", QUIZ_FILE, True, max_points=20.0, points=quiz_points, score=quiz_points / 20,
                     questions=[{"id": "q1", "type": "single", "points": quiz_points, "max_points": 15.0,
                                 "correct": quiz_points == 15.0, "answered": True, "feedback": "because"},
                                {"id": "q2", "type": "text", "points": 0.0, "max_points": 5.0, "correct": False,
                                 "answered": False, "feedback": "unanswered"}])
    grade = Grade(lab="5.3", title="Memory", student="alice", submission="/subs/alice", pass_mark=0.7,
                  parts=[part1, part2, part5], quiz=quiz, started_at="2024-01-01T00:00:00Z", duration=42.4)
    if not gradable:
        grade.gradable, grade.error = False, "cannot reach the Docker engine"
    return grade


# ----------------------------------------------------------------------------- the labcoat shape


def test_totals_exclude_the_host_part_and_count_the_quiz():
    data = synthetic().to_dict()
    assert data["kind"] == "labcoat.grade" and data["schema_version"] == 1
    assert data["max_points"] == 60.0  # 20 + 20 + 0 (not graded) + 20 quiz
    assert data["points"] == 40.0  # 20 + 5 + 15
    assert data["score"] == pytest.approx(40 / 60, abs=1e-4)
    assert data["passed"] is False  # 66.7% < 70%
    part5 = data["parts"][2]
    assert part5["status"] == "not_graded" and part5["max_points"] == 0 and "host's Docker" in part5["reason"]
    assert data["parts"][1]["script"]["timed_out"] is True
    json.dumps(data)  # serialisable as it is


def test_pass_mark_is_inclusive():
    grade = synthetic()
    grade.quiz.points = 17.0  # type: ignore[union-attr]  # 42/60 = 70.0%
    assert grade.passed


def test_ungradable_is_never_a_score():
    data = synthetic(gradable=False).to_dict()
    assert data["gradable"] is False and data["points"] is None and data["score"] is None
    assert data["passed"] is False and "Docker" in data["error"]


# ----------------------------------------------------------------------------- JUnit


def test_junit_parses_and_has_a_suite_per_part_and_a_case_per_check():
    root = ET.fromstring(reports.junit_xml(synthetic().to_dict()).encode())
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["part1: Free vs available", "part2: Page cache",
                                               "part5: Container memory limits", "quiz 5.3"]
    part2 = suites[1]
    cases = part2.findall("testcase")
    assert len(cases) == 2 and part2.get("failures") == "1" and part2.get("tests") == "2"
    failure = cases[1].find("failure")
    assert failure is not None
    assert "expected" in failure.get("message") and "found" in failure.get("message")
    assert "hint: read it again" in failure.text
    assert "\x00" not in failure.text and "\x1b" not in failure.text
    assert "evil" in part2.find("system-out").text  # the script's output, cleaned
    skipped = suites[2].find("testcase/skipped")
    assert skipped is not None and "host's Docker" in skipped.get("message")
    props = {p.get("name"): p.get("value") for p in part2.iter("property")}
    assert props == {"points": "5", "max_points": "20", "status": "failed"}
    assert root.get("tests") == str(sum(int(s.get("tests")) for s in suites))
    assert root.get("failures") == str(sum(int(s.get("failures")) for s in suites))


def test_junit_of_an_ungradable_submission_is_an_error_not_a_failure():
    root = ET.fromstring(reports.junit_xml(synthetic(gradable=False).to_dict()).encode())
    error = root.find("testsuite/testcase/error")
    assert error is not None and "Docker" in error.get("message")
    assert int(root.get("errors")) >= 1


# ----------------------------------------------------------------------------- JSON shapes


def test_gradescope_shape():
    data = synthetic().to_dict()
    gs = reports.to_json(data, "gradescope")
    assert gs is not None
    assert gs["score"] == 40.0 and gs["max_score"] == 60.0 and gs["execution_time"] == 42
    assert isinstance(gs["output"], str) and "alice" in gs["output"]
    for test in gs["tests"]:
        assert {"name", "score", "max_score", "output", "visibility"} <= set(test)
        assert test["visibility"] == "visible"
        assert test.get("status", "passed") in ("passed", "failed")
    assert sum(t["score"] for t in gs["tests"]) == pytest.approx(gs["score"])
    assert sum(t["max_score"] for t in gs["tests"]) == pytest.approx(gs["max_score"])
    failed = [t for t in gs["tests"] if t.get("status") == "failed"]
    assert any("expected: 64 MiB" in t["output"] for t in failed)
    host = [t for t in gs["tests"] if t["name"].startswith("part5")]
    assert host and host[0]["max_score"] == 0 and "status" not in host[0]


def test_gradescope_writes_nothing_for_an_ungradable_submission():
    assert reports.to_json(synthetic(gradable=False).to_dict(), "gradescope") is None


def test_prairielearn_shape():
    pl = reports.to_json(synthetic().to_dict(), "prairielearn")
    assert pl is not None
    assert pl["gradable"] is True and pl["score"] == pytest.approx(40 / 60, abs=1e-4)
    assert 0 <= pl["score"] <= 1
    for test in pl["tests"]:
        assert {"name", "points", "max_points", "message", "output"} <= set(test)
    assert sum(t["points"] for t in pl["tests"]) == pytest.approx(40.0)
    bad = reports.to_json(synthetic(gradable=False).to_dict(), "prairielearn")
    assert bad is not None and bad["gradable"] is False and "score" not in bad and "Docker" in bad["message"]


def test_labcoat_format_is_the_grade_itself():
    data = synthetic().to_dict()
    assert reports.to_json(data, "labcoat") is data
    with pytest.raises(ValueError):
        reports.to_json(data, "moodle")


# ----------------------------------------------------------------------------- Markdown, terminal


def test_markdown_escapes_student_text_and_appends_to_the_step_summary(tmp_path):
    md = reports.markdown(synthetic().to_dict())
    assert "40 / 60 points" in md and "FAIL" in md
    table_rows = [line for line in md.splitlines() if line.startswith("| part2 |")]
    assert table_rows and all(line.count("|") == 7 for line in table_rows)  # a pipe in `found` does not split cells
    assert "\x00" not in md and "\x1b" not in md and "</system-out>" not in md
    summary = tmp_path / "summary.md"
    assert reports.append_step_summary(md, summary) and reports.append_step_summary("more", summary)
    assert summary.read_text().startswith("## ") and summary.read_text().endswith("more\n")
    assert reports.append_step_summary(md, None) is False
    assert "Ungradable" in reports.markdown(synthetic(gradable=False).to_dict())


def test_terminal_report_shows_points_expected_and_found():
    from rich.console import Console

    console = Console(record=True, width=160, color_system=None)
    reports.print_grade(console, synthetic().to_dict(), verbose=True)
    text = console.export_text()
    assert "Total: 40/60" in text and "FAIL" in text
    assert "expected: 64 MiB" in text and "hint: read it again" in text
    assert "TIMED OUT" in text and "3 leftover process(es) stopped" in text
    assert "\x1b[31m" not in text
    assert not any(line.startswith("::") for line in text.splitlines())  # no GitHub workflow command injection
    console = Console(record=True, width=160, color_system=None)
    reports.print_grade(console, synthetic(gradable=False).to_dict())
    assert "UNGRADABLE" in console.export_text()


# ----------------------------------------------------------------------------- a class


def test_class_summary_csv_and_histogram(tmp_path):
    good = synthetic().to_dict()
    best = synthetic(quiz_points=20.0).to_dict()
    best["student"] = "=cmd|' /C calc'!A0"
    broken = synthetic(gradable=False).to_dict()
    broken["student"] = "carol"
    summary = reports.class_summary({"id": "5.3", "title": "Memory", "pass_mark": 0.7,
                                     "parts": ["part1", "part2", "part5"]}, [good, best, broken])
    assert summary["count"] == 3 and summary["graded"] == 2 and summary["ungradable"] == 1
    assert summary["passed"] == 1
    assert summary["score"]["max"] == pytest.approx(45 / 60, abs=1e-4)
    rows = list(csv.DictReader(io.StringIO(reports.class_csv(summary))))
    assert [r["student"] for r in rows] == ["'=cmd|' /C calc'!A0", "alice", "carol"]  # no formula in a spreadsheet
    carol = rows[2]
    assert carol["gradable"] == "no" and carol["points"] == "" and "Docker" in carol["error"]
    assert rows[1]["part2"] == "5" and rows[1]["quiz"] == "15" and rows[1]["percent"] == "66.7"
    assert "| alice |" in reports.class_markdown(summary)
    pytest.importorskip("matplotlib")
    png = reports.histogram(summary, tmp_path / "out" / "histogram.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_student_names_are_safe_and_distinct(tmp_path):
    folders = [tmp_path / "a b", tmp_path / "a-b", tmp_path / "../x"]
    assert student_names(folders) == ["a-b", "a-b-2", "x"]
    assert safe_name("") == "student" and safe_name("Ünïcode/..") == "n-code"


# ----------------------------------------------------------------------------- pure grading logic


def test_layout_and_template_come_from_the_lab(catalog):
    lab = catalog.lab("5.3")
    assert layout(lab) == ["part1.sh", "part2.sh", "part3.sh", "part4.sh", "part5.sh", "part6.sh", "quiz.yaml"]
    files = template_files(catalog, lab)
    assert list(files) == layout(lab)
    part1 = files["part1.sh"]
    assert "answer part1 largest_pid" in part1 and "answer part1 limit_bytes" in part1
    assert "no network" in part1 and "# 1. Find the process" in part1
    assert not has_work(part1)  # a template left as it is holds no commands
    assert "provocation" in files["part3.sh"] and "after this script ends" in files["part3.sh"]
    assert "while this script runs" in files["part4.sh"]
    assert "labcoat policy" in files["part5.sh"] and "docker exec \"$LAB_SANDBOX\" answer part5" in files["part5.sh"]
    assert "answers:" in files["quiz.yaml"]


def test_quiz_is_scaled_to_quiz_points(catalog, tmp_path):
    lab = catalog.lab("5.3")
    full = grade_quiz(catalog, lab, ANSWERS / "5.3-all-correct.yaml")
    assert full is not None and full.points == 20 and full.max_points == 20 and full.error is None
    assert sum(q["max_points"] for q in full.questions) == pytest.approx(20, abs=0.01)
    part = grade_quiz(catalog, lab, ANSWERS / "5.3-partial.yaml")
    assert part is not None and 0 < part.points < 20
    missing = grade_quiz(catalog, lab, None)
    assert missing is not None and missing.points == 0 and "no quiz.yaml" in missing.error
    bad = tmp_path / "quiz.yaml"
    bad.write_text("answers:\n  no-such-question: b\n")
    broken = grade_quiz(catalog, lab, bad)
    assert broken is not None and broken.points == 0 and "could not be read" in broken.error  # 0, not a usage error


def test_junit_of_a_full_quiz_has_no_failures_and_explanations_are_manual(catalog):
    """Regression: explanations (graded by people, 0 automatic points) were JUnit failures, so a
    reference submission with full marks showed 5 failures."""
    lab = catalog.lab("5.3")
    full = grade_quiz(catalog, lab, ANSWERS / "5.3-all-correct.yaml")
    assert full is not None and full.points == full.max_points
    data = synthetic().to_dict()
    data["parts"] = []
    data["quiz"] = {**data["quiz"], "points": full.points, "max_points": full.max_points,
                    "questions": full.questions, "error": None}
    root = ET.fromstring(reports.junit_xml(data).encode())
    quiz = root.find("testsuite")
    manual = [q for q in full.questions if q.get("graded_by") == "people"]
    assert manual, "the quiz has explanations graded by people"
    assert quiz.get("failures") == "0" and quiz.get("skipped") == str(len(manual))
    skipped = [c for c in quiz.findall("testcase") if c.find("skipped") is not None]
    assert all("graded by people" in c.find("skipped").get("message") for c in skipped)


def test_checks_are_listed_without_a_sandbox_and_keep_their_points(catalog):
    lab = catalog.lab("5.3")
    part1 = lab.part("part1")
    checks = static_checks(catalog, part1)
    assert [c.check for c in checks] == ["test_largest_process_pid", "test_largest_process_name", "test_mem_free",
                                        "test_mem_available", "test_limit"]
    zero = zero_part(part1, checks, "nothing: no part1.sh")
    assert [c.max_points for c in zero.checks] == [5, 3, 4, 4, 4]
    assert all(c.points == 0 and c.status == "failed" for c in zero.checks)
    assert sum(c.max_points for c in zero_part(lab.part("part2"), static_checks(catalog, lab.part("part2")),
                                               "x").checks) == 20


def test_submission_reading(catalog, tmp_path):
    lab = catalog.lab("5.3")
    (tmp_path / "part1.sh").write_text("# only a comment\n")
    (tmp_path / "part2.sh").write_text("x" * (300 * 1024))
    (tmp_path / "part3.sh").write_bytes(b"echo \xff\n")
    sub = Submission.read(tmp_path, lab)
    assert sub.scripts["part1.sh".removesuffix(".sh")] == "# only a comment\n" and not has_work(sub.scripts["part1"])
    assert sub.scripts["part2"] is None and "at most" in sub.problems["part2"]
    assert has_work(sub.scripts["part3"]) and sub.scripts["part4"] is None and sub.quiz_file is None


# ----------------------------------------------------------------------------- the command line, no sandbox needed


def test_template_command_writes_and_refuses_to_overwrite(cli, tmp_path):
    target = tmp_path / "mine"
    result = cli("--content", str(ROOT), "grade", "--template", "5.3", str(target))
    assert result.exit_code == 0, result
    assert sorted(p.name for p in target.iterdir()) == sorted(layout(Catalog.load(ROOT).lab("5.3")))
    again = cli("--content", str(ROOT), "grade", "--template", "5.3", str(target))
    assert again.exit_code == 2 and "not overwriting" in again.stderr
    assert cli("--content", str(ROOT), "grade", "--template", "5.3", str(target), "--force").exit_code == 0


def test_the_template_left_as_it_is_scores_zero_without_a_sandbox(cli, tmp_path, catalog):
    target = tmp_path / "untouched"
    assert cli("--content", str(ROOT), "grade", "--template", "5.3", str(target)).exit_code == 0
    out = tmp_path / "r.json"
    result = cli("--content", str(ROOT), "--backend", "docker", "grade", "5.3", "--submission", str(target),
                 "--json", str(out), "--junit", str(tmp_path / "j.xml"), "-q")
    assert result.exit_code == 1, result
    data = json.loads(out.read_text())
    lab = catalog.lab("5.3")  # every part counts, the host part (docker through the grading proxy) too
    assert data["gradable"] is True and data["points"] == 0
    assert data["max_points"] == sum(p.points for p in lab.parts) + lab.quiz_points
    assert all(p["script"]["ran"] is False for p in data["parts"])
    ET.parse(tmp_path / "j.xml")


@pytest.mark.parametrize("args, message", [
    ((), "nothing to grade"),
    (("--submission", "."), "do not go together"),
    (("--submission", ".", "--part", "part9"), "no part 'part9'"),
    (("--submission", ".", "--jobs", "2"), "--jobs only goes with --batch"),
    (("--batch", ".", "--json", "x.json"), "are for one submission"),
    (("--template",), "needs a folder"),
])
def test_usage_errors_exit_2(cli, tmp_path, args, message):
    if args[:2] == ("--submission", ".") and message == "do not go together":
        args = (*args, "--batch", str(tmp_path))
    result = cli("--content", str(ROOT), "grade", "5.3", *args)
    assert result.exit_code == 2, result
    assert message in result.stderr


def test_grading_refuses_the_local_backend(cli, tmp_path):
    result = cli("--content", str(ROOT), "--backend", "local", "grade", "5.3", "--submission", str(tmp_path))
    assert result.exit_code == 2 and "container sandboxes only" in result.stderr


# ----------------------------------------------------------------------------- the live figure (truth)


def test_truth_is_in_the_instructors_reports_only():
    """The figure a failed check compared with is for instructors (the grade JSON, the terminal report);
    the outputs students see (Gradescope, PrairieLearn, JUnit in their CI) never carry it."""
    from rich.console import Console

    truth = "20111222 kB"
    grade = synthetic()
    grade.parts[1].checks.append(check("part2", "test_mem_available", "failed", 0, 5, expected="MemAvailable in kB",
                                       found="24684092: this is MemTotal", hint="not MemTotal", truth=truth))
    data = grade.to_dict()
    assert [c.get("truth") for c in data["parts"][1]["checks"] if c["check"] == "test_mem_available"] == [truth]
    assert truth in json.dumps(reports.to_json(data, "labcoat"))
    console = Console(record=True, width=160, color_system=None)
    reports.print_grade(console, data, verbose=True)
    assert f"truth: {truth}" in console.export_text()
    student_side = {"gradescope": json.dumps(reports.to_json(data, "gradescope")),
                    "prairielearn": json.dumps(reports.to_json(data, "prairielearn")),
                    "junit": reports.junit_xml(data), "markdown (a CI step summary)": reports.markdown(data)}
    for fmt, text in student_side.items():
        assert "MemTotal" in text, fmt  # the check's feedback is there...
        assert "20111222" not in text and '"truth"' not in text, fmt  # ...its live figure is not
