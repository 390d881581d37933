"""Reports of a graded submission (and of a class): terminal, JUnit XML, JSON, Markdown, CSV, PNG.

Over 500 lines on purpose: one renderer per report format, each small, all reading the same JSON shape.

Every function takes labcoat's own JSON shape of a grade (`Grade.to_dict()`, documented
in docs/grading.md), so a report can be rendered again from a saved results.json and
tests need no Docker. Nothing here runs anything.

Student-controlled text (a script's output, answers echoed back as "found") is treated
as hostile: control characters are removed before it reaches XML, the terminal or
Markdown, and it is never printed at the start of a line where CI systems look for
commands (GitHub's `::error::` and friends).
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
import statistics
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

FORMATS = ("labcoat", "gradescope", "prairielearn")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*(\x07|\x1b\\)")


def clean(text: Any, limit: int | None = None) -> str:
    """Text safe for XML 1.0, a terminal and Markdown: no ANSI sequences or control characters."""
    if text is None:
        return ""
    out = _CONTROL.sub("", _ANSI.sub("", str(text)))
    if limit is not None and len(out) > limit:
        out = out[:limit] + f"… [{len(out) - limit} more characters]"
    return out


def pts(value: Any) -> str:
    """Points for people: 20, 7.5, 3.33."""
    if value is None:
        return "-"
    number = float(value)
    return f"{number:.2f}".rstrip("0").rstrip(".") if number != int(number) else str(int(number))


def percent(data: dict[str, Any]) -> str:
    return f"{data['score'] * 100:.1f}%" if data.get("score") is not None else "-"


def verdict(data: dict[str, Any]) -> str:
    """UNGRADABLE, PASS or FAIL."""
    if not data.get("gradable", True):
        return "UNGRADABLE"
    return "PASS" if data.get("passed") else "FAIL"


def _checks(part: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in part.get("checks", []) if c.get("check") != "(part)" or part.get("status") == "failed"]


def _status_text(part: dict[str, Any], reason: str) -> str:
    """`failed: why`, or for a part that is not graded automatically just the reason (it says so)."""
    status = part["status"].replace("_", " ")
    if not reason:
        return status
    return reason if part["status"] == "not_graded" else f"{status}: {reason}"


def check_detail(check: dict[str, Any]) -> str:
    """What a check expected, what it found and the hint, as plain lines."""
    lines = []
    if check.get("status") == "skipped":
        return f"skipped: {clean(check.get('message'))}"
    if check.get("status") == "error":
        return f"could not run (not the student's fault): {clean(check.get('message'))}"
    if check.get("expected") is not None:
        lines.append(f"expected: {clean(check['expected'], 500)}")
    if check.get("found") is not None:
        lines.append(f"found: {clean(check['found'], 500)}")
    if check.get("hint"):
        lines.append(f"hint: {clean(check['hint'], 500)}")
    if not lines and check.get("message"):
        lines.append(clean(check["message"], 500))
    return "\n".join(lines)


def script_line(script: dict[str, Any] | None) -> str:
    """One line about the student's script: ran how long, exit status, output, leftovers."""
    if not script:
        return ""
    if not script.get("ran"):
        return f"{script['file']}: {script.get('note') or ('not run' if script.get('present') else 'missing')}"
    bits = [f"exit {script.get('exit_status')}", f"{script.get('duration', 0):.1f} s",
            f"{script.get('output_bytes', 0)} bytes of output"]
    if script.get("timed_out"):
        bits.append("TIMED OUT")
    if script.get("truncated"):
        bits.append("output cut")
    if script.get("leftover_processes"):
        bits.append(f"{script['leftover_processes']} leftover process(es) stopped")
    return f"{script['file']}: " + ", ".join(bits)


def summary_text(data: dict[str, Any]) -> str:
    """A few plain lines: the verdict, the total and one line per part."""
    head = f"Lab {data['lab']} ({clean(data.get('title'))}) for {clean(data.get('student'))}: {verdict(data)}"
    if not data.get("gradable", True):
        return (f"{head}\nNot graded: {clean(data.get('error'))}\n"
                "This is an infrastructure problem, not the student's work; grade it again.")
    lines = [f"{head}, {pts(data['points'])}/{pts(data['max_points'])} points ({percent(data)}; "
             f"pass mark {data['pass_mark'] * 100:g}%)"]
    for part in data.get("parts", []):
        line = f"- {part['part']} {clean(part.get('title'))}: {part['status']}, {pts(part['points'])}/{pts(part['max_points'])}"
        if part.get("reason"):
            line += f" ({clean(part['reason'])})"
        lines.append(line)
    quiz = data.get("quiz")
    if quiz:
        line = f"- quiz {quiz['quiz']}: {pts(quiz['points'])}/{pts(quiz['max_points'])}"
        if quiz.get("error"):
            line += f" ({clean(quiz['error'], 300)})"
        lines.append(line)
    return "\n".join(lines)


# ----------------------------------------------------------------------------- terminal


def print_grade(console: Any, data: dict[str, Any], *, verbose: bool = False) -> None:
    """The terminal report: per part, per check, points and expected vs found."""
    from rich.markup import escape
    from rich.table import Table

    marks = {"passed": "[green]✓[/]", "failed": "[red]✗[/]", "skipped": "[yellow]-[/]", "error": "[magenta]![/]"}
    console.print(f"[bold]Lab {escape(data['lab'])}[/] {escape(clean(data.get('title')))} - "
                  f"[bold]{escape(clean(data.get('student')))}[/]")
    if not data.get("gradable", True):
        console.print(f"[magenta bold]UNGRADABLE[/]: {escape(clean(data.get('error')))}")
        console.print("[magenta]An infrastructure problem, not the student's work: grade it again.[/]")
    table = Table(show_header=True, header_style="bold", expand=False, show_lines=False)
    table.add_column("", width=1)
    table.add_column("part / check", overflow="fold", max_width=48)
    table.add_column("points", justify="right", no_wrap=True)
    table.add_column("expected / found", overflow="fold", max_width=70)
    for part in data.get("parts", []):
        colour = {"passed": "green", "failed": "red", "skipped": "yellow", "error": "magenta"}.get(part["status"], "dim")
        table.add_row("", f"[bold]{escape(part['part'])}[/] {escape(clean(part.get('title')))}",
                      f"[bold]{pts(part['points'])}/{pts(part['max_points'])}[/]",
                      f"[{colour}]{escape(_status_text(part, clean(part.get('reason'), 200)))}[/]")
        if part.get("script") and (part["script"].get("ran") or verbose):
            table.add_row("", "  [dim]script[/]", "", f"[dim]{escape(clean(script_line(part['script'])))}[/]")
        if part.get("status") in ("not_graded", "skipped") and not part.get("checks"):
            continue
        if not (part.get("script") or {}).get("ran") and not verbose:
            continue  # nothing was run: the part's line says why, every check would repeat it
        for c in _checks(part):
            detail = "" if c["status"] == "passed" else check_detail(c)
            if c["status"] != "passed" and c.get("truth"):  # the instructor's view: what the check compared with
                detail += f"\ntruth: {clean(c['truth'], 200)}"
            table.add_row(marks.get(c["status"], "?"), "  " + escape(clean(c.get("title"), 120)),
                          f"{pts(c['points'])}/{pts(c['max_points'])}", escape(detail))
        if verbose and part.get("script", {}) and part["script"].get("output"):
            out = clean(part["script"]["output"], 2000).splitlines()[-20:]
            table.add_row("", "  [dim]output (last lines)[/]", "", escape("\n".join("│ " + line for line in out)))
    quiz = data.get("quiz")
    if quiz:
        wrong = [q for q in quiz.get("questions", []) if not q.get("correct")]
        table.add_row("", f"[bold]quiz {escape(quiz['quiz'])}[/]", f"[bold]{pts(quiz['points'])}/{pts(quiz['max_points'])}[/]",
                      escape(clean(quiz["error"], 300)) if quiz.get("error")
                      else f"{len(quiz.get('questions', [])) - len(wrong)}/{len(quiz.get('questions', []))} questions right")
        if verbose:
            for q in quiz.get("questions", []):
                table.add_row(marks["passed" if q.get("correct") else "failed"], "  " + escape(q["id"]),
                              f"{pts(q['points'])}/{pts(q['max_points'])}", "")
    console.print(table)
    if data.get("gradable", True):
        colour = "green" if data.get("passed") else "red"
        console.print(f"Total: [bold]{pts(data['points'])}/{pts(data['max_points'])}[/] ({percent(data)}), "
                      f"pass mark {data['pass_mark'] * 100:g}%: [{colour} bold]{verdict(data)}[/]")


# ----------------------------------------------------------------------------- JUnit XML


def junit_xml(data: dict[str, Any]) -> str:
    """JUnit XML: one testsuite per part (and the quiz), one testcase per check.

    A check that did not earn its points is a <failure> with expected/found/hint; a
    skipped check (or part) is <skipped>; a check that could not run is an <error>. An
    ungradable submission is one <error> testcase, so CI shows it as broken, not failed.
    """
    lab = clean(data.get("lab"))
    root = ET.Element("testsuites", name=f"labcoat {lab} {clean(data.get('student'))}")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}

    def suite(name: str, properties: dict[str, Any]) -> ET.Element:
        el = ET.SubElement(root, "testsuite", name=clean(name))
        props = ET.SubElement(el, "properties")
        for key, value in properties.items():
            ET.SubElement(props, "property", name=key, value=clean(value))
        return el

    def case(parent: ET.Element, classname: str, name: str, seconds: float, status: str, message: str = "",
             detail: str = "") -> None:
        tc = ET.SubElement(parent, "testcase", classname=clean(classname), name=clean(name), time=f"{seconds:.3f}")
        totals["tests"] += 1
        if status == "failed":
            ET.SubElement(tc, "failure", message=clean(message, 1000), type="CheckFailed").text = clean(detail)
            totals["failures"] += 1
        elif status == "error":
            ET.SubElement(tc, "error", message=clean(message, 1000), type="InfrastructureError").text = clean(detail)
            totals["errors"] += 1
        elif status == "skipped":
            ET.SubElement(tc, "skipped", message=clean(message, 1000))
            totals["skipped"] += 1

    if not data.get("gradable", True):
        el = suite("grading", {"gradable": "false"})
        case(el, f"{lab}.grading", "the submission could be graded", 0, "error", clean(data.get("error")),
             "An infrastructure problem, not the student's work: grade it again.")
    for part in data.get("parts", []):
        el = suite(f"{part['part']}: {part.get('title', '')}",
                   {"points": pts(part["points"]), "max_points": pts(part["max_points"]), "status": part["status"]})
        script = part.get("script")
        if script and script.get("output"):
            ET.SubElement(el, "system-out").text = clean(script["output"])
        classname = f"{lab}.{part['part']}"
        if part["status"] in ("not_graded", "skipped") and not part.get("checks"):
            case(el, classname, part.get("title", part["part"]), 0, "skipped", part.get("reason") or part["status"])
            continue
        for c in _checks(part):
            name = f"{c['check']}: {c.get('title', '')} [{pts(c['points'])}/{pts(c['max_points'])} points]"
            status = c["status"]
            if status == "passed" and c["points"] < c["max_points"]:
                status = "failed"
            message = ", ".join(f"{key} {clean(c.get(key), 300)}" for key in ("expected", "found")
                                if c.get(key) is not None) or clean(c.get("message"), 600)
            case(el, classname, name, float(c.get("duration") or 0), status,
                 message if status != "skipped" else clean(c.get("message")), check_detail(c))
    quiz = data.get("quiz")
    if quiz:
        el = suite(f"quiz {quiz['quiz']}", {"points": pts(quiz["points"]), "max_points": pts(quiz["max_points"])})
        if quiz.get("error"):
            case(el, f"{lab}.quiz", "answers file", 0, "failed", clean(quiz["error"], 600), clean(quiz["error"]))
        for q in quiz.get("questions", []):
            if q.get("graded_by") == "people":  # an explanation: never auto-scored, so neither passed nor failed
                case(el, f"{lab}.quiz", f"{q['id']} [manual: {pts(q.get('manual_points', 0))} points]", 0, "skipped",
                     "graded by people (docs/quiz.md): " + ("answered" if q.get("answered") else "unanswered"))
                continue
            ok = q.get("correct") and q["points"] >= q["max_points"]
            case(el, f"{lab}.quiz", f"{q['id']} [{pts(q['points'])}/{pts(q['max_points'])} points]", 0,
                 "passed" if ok else "failed", "unanswered" if not q.get("answered") else "not fully right",
                 clean(q.get("feedback")))
    for el in root.findall("testsuite"):
        cases = el.findall("testcase")
        el.set("tests", str(len(cases)))
        el.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
        el.set("errors", str(sum(1 for c in cases if c.find("error") is not None)))
        el.set("skipped", str(sum(1 for c in cases if c.find("skipped") is not None)))
        el.set("time", f"{sum(float(c.get('time', 0)) for c in cases):.3f}")
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", f"{float(data.get('duration') or 0):.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# ----------------------------------------------------------------------------- JSON


def _tests(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Every check and quiz question as a flat list (name, points, output), the common ground of both LMSs."""
    tests = []
    for n, part in enumerate(data.get("parts", []), 1):
        if part["status"] in ("not_graded", "skipped") and not part.get("checks"):
            tests.append({"name": f"{part['part']}: {clean(part.get('title'))}", "number": f"{n}", "score": 0,
                          "max_score": 0, "status": None,
                          "output": _status_text(part, clean(part.get("reason")))})
            continue
        for m, c in enumerate(_checks(part), 1):
            out = check_detail(c) if c["status"] != "passed" else "passed"
            if m == 1 and part.get("script"):
                out = script_line(part["script"]) + "\n" + out
            tests.append({"name": f"{part['part']}: {clean(c.get('title'))}", "number": f"{n}.{m}",
                          "score": c["points"], "max_score": c["max_points"],
                          "status": "passed" if c["status"] == "passed" and c["points"] >= c["max_points"] else
                          ("failed" if c["status"] in ("failed", "passed") else None),
                          "output": clean(out)})
    quiz = data.get("quiz")
    if quiz:
        n = len(data.get("parts", [])) + 1
        if quiz.get("error"):
            tests.append({"name": f"quiz {quiz['quiz']}: answers file", "number": f"{n}.0", "score": 0, "max_score": 0,
                          "status": "failed", "output": clean(quiz["error"])})
        for m, q in enumerate(quiz.get("questions", []), 1):
            tests.append({"name": f"quiz {quiz['quiz']}: {q['id']}", "number": f"{n}.{m}", "score": q["points"],
                          "max_score": q["max_points"], "status": "passed" if q.get("correct") else "failed",
                          "output": clean(q.get("feedback"))})
    return tests


def gradescope_json(data: dict[str, Any]) -> dict[str, Any] | None:
    """Gradescope's results.json, or None for an ungradable submission.

    Gradescope has no "ungradable": a results.json always gives a score. Without one it
    reports that the autograder failed and records nothing, so the submission can be
    graded again; writing a 0 instead would count against the student.
    """
    if not data.get("gradable", True):
        return None
    tests = []
    for t in _tests(data):
        entry = {"name": t["name"], "number": t["number"], "score": t["score"], "max_score": t["max_score"],
                 "output": t["output"], "visibility": "visible"}
        if t["status"]:
            entry["status"] = t["status"]
        tests.append(entry)
    return {"score": data["points"], "max_score": data["max_points"],
            "execution_time": int(round(float(data.get("duration") or 0))), "output": summary_text(data),
            "visibility": "visible", "tests": tests,
            "extra_data": {"lab": data["lab"], "passed": data.get("passed"), "score_fraction": data.get("score")}}


def prairielearn_json(data: dict[str, Any]) -> dict[str, Any]:
    """PrairieLearn's external-grader results.json: score as a fraction, gradable false when ungradable."""
    if not data.get("gradable", True):
        return {"gradable": False, "message": f"Not graded: {clean(data.get('error'))} (an infrastructure "
                "problem, not your work; it will be graded again)", "tests": []}
    tests = [{"name": t["name"], "points": t["score"], "max_points": t["max_score"],
              "message": t["output"].splitlines()[0] if t["output"] else "", "output": t["output"]}
             for t in _tests(data)]
    return {"gradable": True, "score": data["score"], "message": summary_text(data).splitlines()[0],
            "output": summary_text(data), "tests": tests}


def to_json(data: dict[str, Any], fmt: str = "labcoat") -> dict[str, Any] | None:
    """The grade in one of FORMATS (None: nothing to write, see gradescope_json)."""
    if fmt == "labcoat":
        return data
    if fmt == "gradescope":
        return gradescope_json(data)
    if fmt == "prairielearn":
        return prairielearn_json(data)
    raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")


def dumps(obj: Any) -> str:
    # DEL and the C1 controls (U+007F-U+009F; U+009B is a terminal's CSI) from a student's output are
    # written as \u escapes (json.dumps escapes only C0): the same JSON, but `--json -` on a terminal
    # passes no control character (issue 15; DEL found by the fuzz harness in session 6).
    text = json.dumps(obj, indent=2, ensure_ascii=False)
    return re.sub("[\x7f-\x9f]", lambda m: f"\\u{ord(m.group()):04x}", text) + "\n"


# ----------------------------------------------------------------------------- Markdown


def _md(text: Any, limit: int = 300) -> str:
    """Text for one Markdown table cell: escaped HTML, no pipes or newlines."""
    return html.escape(clean(text, limit), quote=False).replace("|", "&#124;").replace("\n", "<br>").replace("`", "&#96;")


def markdown(data: dict[str, Any]) -> str:
    """A Markdown summary (for $GITHUB_STEP_SUMMARY): the verdict, a table per part, what to fix."""
    icon = {"PASS": "✅", "FAIL": "❌", "UNGRADABLE": "⚠️"}[verdict(data)]
    out = [f"## {icon} Lab {_md(data['lab'])}: {_md(data.get('title'))} - {_md(data.get('student'))}", ""]
    if not data.get("gradable", True):
        out += [f"**Ungradable**: {_md(data.get('error'), 1000)}", "",
                "An infrastructure problem, not the student's work: grade it again.", ""]
    else:
        out += [f"**{pts(data['points'])} / {pts(data['max_points'])} points** ({percent(data)}); pass mark "
                f"{data['pass_mark'] * 100:g}%: **{verdict(data)}**", ""]
    out += ["| part | status | points | script |", "|---|---|---:|---|"]
    for part in data.get("parts", []):
        status = _status_text(part, _md(part.get("reason"), 160))
        out.append(f"| {_md(part['part'])} {_md(part.get('title'))} | {status} | {pts(part['points'])}/"
                   f"{pts(part['max_points'])} | {_md(script_line(part.get('script')), 160)} |")
    quiz = data.get("quiz")
    if quiz:
        out.append(f"| quiz {_md(quiz['quiz'])} | {_md(quiz.get('error') or 'scored', 160)} | {pts(quiz['points'])}/"
                   f"{pts(quiz['max_points'])} | |")
    missed = [(p, c) for p in data.get("parts", []) for c in _checks(p) if c["status"] in ("failed", "error")]
    if missed:
        out += ["", "<details><summary>What did not pass</summary>", "",
                "| part | check | points | expected | found | hint |", "|---|---|---:|---|---|---|"]
        for p, c in missed:
            out.append(f"| {_md(p['part'])} | {_md(c.get('title'))} | {pts(c['points'])}/{pts(c['max_points'])} | "
                       f"{_md(c.get('expected'))} | {_md(c.get('found'))} | {_md(c.get('hint'))} |")
        out += ["", "</details>"]
    return "\n".join(out) + "\n"


def append_step_summary(text: str, path: str | Path | None) -> bool:
    """Append to the file GitHub names in $GITHUB_STEP_SUMMARY; False when there is none."""
    if not path:
        return False
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text if text.endswith("\n") else text + "\n")
    return True


# ----------------------------------------------------------------------------- a class


def class_row(data: dict[str, Any], part_ids: list[str]) -> dict[str, Any]:
    """One student's row of the class summary."""
    by_part = {p["part"]: p for p in data.get("parts", [])}
    row: dict[str, Any] = {
        "student": data.get("student"),
        "gradable": bool(data.get("gradable", True)),
        "points": data.get("points") if data.get("gradable", True) else None,
        "max_points": data.get("max_points"),
        "score": data.get("score") if data.get("gradable", True) else None,
        "passed": bool(data.get("passed")),
    }
    for pid in part_ids:
        part = by_part.get(pid)
        row[pid] = part["points"] if part and data.get("gradable", True) else None
    quiz = data.get("quiz")
    row["quiz"] = quiz["points"] if quiz and data.get("gradable", True) else None
    row["duration"] = data.get("duration")
    row["error"] = clean(data.get("error")) or None
    return row


def class_summary(lab: dict[str, Any], grades: list[dict[str, Any]]) -> dict[str, Any]:
    """The class: one row per student and the statistics of the gradable ones.

    `lab` gives id, title, pass_mark and part ids ({"id", "title", "pass_mark", "parts"}).
    """
    parts = list(lab.get("parts", []))
    rows = [class_row(g, parts) for g in sorted(grades, key=lambda g: str(g.get("student")))]
    scores = [r["score"] for r in rows if r["gradable"] and r["score"] is not None]
    stats = {"mean": None, "median": None, "min": None, "max": None, "stdev": None}
    if scores:
        stats = {"mean": round(statistics.fmean(scores), 4), "median": round(statistics.median(scores), 4),
                 "min": min(scores), "max": max(scores),
                 "stdev": round(statistics.pstdev(scores), 4) if len(scores) > 1 else 0.0}
    return {"schema_version": 1, "kind": "labcoat.class", "lab": lab.get("id"), "title": lab.get("title"),
            "pass_mark": lab.get("pass_mark"), "parts": parts, "count": len(rows),
            "graded": sum(1 for r in rows if r["gradable"]), "ungradable": sum(1 for r in rows if not r["gradable"]),
            "passed": sum(1 for r in rows if r["passed"]), "score": stats, "students": rows}


CSV_HEAD = ["student", "gradable", "points", "max_points", "score", "percent", "passed"]


def class_csv(summary: dict[str, Any]) -> str:
    """One row per student: totals, each part's points, the quiz, duration and error."""
    buf = io.StringIO()
    columns = [*CSV_HEAD, *summary["parts"], "quiz", "duration", "error"]
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for r in summary["students"]:
        values = {**r, "percent": f"{r['score'] * 100:.1f}" if r["score"] is not None else ""}
        cells = []
        for col in columns:
            v = values.get(col)
            if isinstance(v, bool):
                v = "yes" if v else "no"
            elif isinstance(v, int | float) and col not in ("score", "duration"):
                v = pts(v)
            text = "" if v is None else str(v)
            if text[:1] in ("=", "+", "-", "@") and col in ("student", "error"):
                text = "'" + text  # never a formula when opened in a spreadsheet
            cells.append(text)
        writer.writerow(cells)
    return buf.getvalue()


def class_markdown(summary: dict[str, Any]) -> str:
    """The class summary in Markdown (for $GITHUB_STEP_SUMMARY)."""
    s = summary["score"]
    out = [f"## Lab {_md(summary['lab'])}: {_md(summary.get('title'))} - class of {summary['count']}", "",
           f"{summary['graded']} graded, **{summary['passed']} passed** (pass mark "
           f"{(summary.get('pass_mark') or 0) * 100:g}%), {summary['ungradable']} ungradable.", ""]
    if s["mean"] is not None:
        out += [f"Score: mean {s['mean'] * 100:.1f}%, median {s['median'] * 100:.1f}%, "
                f"min {s['min'] * 100:.1f}%, max {s['max'] * 100:.1f}%.", ""]
    head = ["student", "points", "%", *summary["parts"], "quiz", "verdict"]
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in summary["students"]:
        v = "⚠️ ungradable" if not r["gradable"] else ("✅ pass" if r["passed"] else "❌ fail")
        cells = [_md(r["student"]), pts(r["points"]), f"{r['score'] * 100:.1f}" if r["score"] is not None else "-",
                 *[pts(r.get(p)) for p in summary["parts"]], pts(r.get("quiz")), v]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def print_class(console: Any, summary: dict[str, Any]) -> None:
    """The class summary as a terminal table."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"Lab {summary['lab']}: {summary['count']} submission(s)", header_style="bold")
    for col in ("student", "points", "%", *summary["parts"], "quiz", "verdict"):
        table.add_column(col, justify="left" if col in ("student", "verdict") else "right")
    for r in summary["students"]:
        v = ("[magenta]ungradable[/] " + escape(clean(r.get("error"), 80))) if not r["gradable"] else (
            "[green]pass[/]" if r["passed"] else "[red]fail[/]")
        table.add_row(escape(clean(r["student"])), pts(r["points"]),
                      f"{r['score'] * 100:.1f}" if r["score"] is not None else "-",
                      *[pts(r.get(p)) for p in summary["parts"]], pts(r.get("quiz")), v)
    console.print(table)
    s = summary["score"]
    line = f"{summary['graded']} graded, {summary['passed']} passed, {summary['ungradable']} ungradable"
    if s["mean"] is not None:
        line += f"; mean {s['mean'] * 100:.1f}%, median {s['median'] * 100:.1f}%"
    console.print(line)


def histogram(summary: dict[str, Any], path: Path) -> Path:
    """A PNG of the score distribution (gradable submissions), the pass mark as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = [r["score"] * 100 for r in summary["students"] if r["gradable"] and r["score"] is not None]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    try:
        ax.hist(scores, bins=list(range(0, 101, 10)), color="tab:blue", edgecolor="white")
        mark = (summary.get("pass_mark") or 0) * 100
        ax.axvline(mark, color="tab:red", linestyle="--")
        ax.set_xlim(0, 100)
        counts = [sum(1 for s in scores if lo <= s < lo + 10 or (lo == 90 and s == 100)) for lo in range(0, 100, 10)]
        ax.set_ylim(0, max([1, *counts]) * 1.2)
        ax.text(mark + (1 if mark < 75 else -1), ax.get_ylim()[1] * 0.97, f"pass mark {mark:g}%", color="tab:red",
                va="top", ha="left" if mark < 75 else "right")
        ax.set_xlabel("score (% of the points)")
        ax.set_ylabel("submissions")
        ungradable = summary.get("ungradable") or 0
        ax.set_title(f"Lab {summary['lab']}: {len(scores)} graded" + (f", {ungradable} ungradable (not shown)"
                                                                        if ungradable else ""))
        ax.yaxis.get_major_locator().set_params(integer=True)
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
    return path
