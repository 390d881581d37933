"""A class in shards: which submissions a shard grades, and merging the shards' reports.

`--shard K/N` picks the submissions whose name hashes to K (SHA-256 of the student's name,
modulo N): a submission stays in its shard when others are added or removed, and every
machine that sees the same folder names agrees without talking to the others.
`lab grade merge OUT1 OUT2 ... --out CLASS` reads each shard's `summary.json` and
`STUDENT/results.json` and writes the class exactly as an unsharded run writes it
(`write_class` is the one writer both use: summary.json/csv/md, the class junit.xml, histogram.png).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from labcoat.errors import UsageProblem

SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
CLASS_FILES = ("summary.json", "summary.csv", "summary.md", "junit.xml", "histogram.png")


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """'2/3' -> (2, 3); None stays None; anything else is a usage error."""
    if text is None:
        return None
    m = SHARD.match(text)
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)) or int(m.group(2)) > 10_000:
        raise UsageProblem(f"--shard {text!r}: give K/N with 1 <= K <= N (e.g. --shard 1/3)",
                           hint="N shards numbered 1..N; each grades the submissions whose name hashes to it")
    return int(m.group(1)), int(m.group(2))


def shard_of(name: str, n: int) -> int:
    """The shard (1..n) of a submission named `name`: stable under added or removed submissions."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % n + 1


def student_seed(seed: str, student: str) -> str:
    """A per-student seed from the class seed: the same in every shard and every rerun."""
    digest = hashlib.sha256(f"{seed}\0{student}".encode()).digest()
    return str(int.from_bytes(digest[:4], "big") % (2**31))


def class_junit(lab: dict[str, Any], grades: list[dict[str, Any]]) -> str:
    """The class as JUnit XML: a testsuite per student (in name order), the student's checks as its testcases.

    Each student's cases are those of the student's own junit.xml (`reports.junit_xml`, one
    suite per part there), their classname prefixed with the student (`alice.5.3.part1`) so
    that CI viewers keep students apart; an ungradable submission is its one <error> case.
    """
    import xml.etree.ElementTree as ET

    from labcoat.grading import reports

    root = ET.Element("testsuites", name=f"labcoat {reports.clean(lab.get('id'))} class")
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    seconds = 0.0
    for data in sorted(grades, key=lambda g: str(g.get("student"))):
        student = reports.clean(data.get("student"))
        own = ET.fromstring(reports.junit_xml(data).split("\n", 1)[1])
        suite = ET.SubElement(root, "testsuite", name=student)
        props = ET.SubElement(suite, "properties")
        for key in ("gradable", "points", "max_points", "passed", "seed"):
            if data.get(key) is not None:
                value = reports.pts(data[key]) if key.endswith("points") else str(data[key]).lower()
                ET.SubElement(props, "property", name=key, value=reports.clean(value))
        for case in own.iter("testcase"):
            case.set("classname", f"{student}.{case.get('classname', '')}")
            suite.append(case)
        for key in totals:
            suite.set(key, own.get(key, "0"))
            totals[key] += int(own.get(key, "0"))
        suite.set("time", own.get("time", "0"))
        seconds += float(own.get("time", "0"))
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", f"{seconds:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_class(out: Path, lab: dict[str, Any], grades: list[dict[str, Any]], *, shard: tuple[int, int] | None = None,
                warn: Any = None) -> dict[str, Any]:
    """summary.json, summary.csv, summary.md, junit.xml, histogram.png in `out`; the summary ($GITHUB_STEP_SUMMARY)."""
    from labcoat.grading import reports

    summary = reports.class_summary(lab, grades)
    if shard:
        summary["shard"] = {"k": shard[0], "n": shard[1]}
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(reports.dumps(summary), encoding="utf-8")
    (out / "summary.csv").write_text(reports.class_csv(summary), encoding="utf-8")
    md = reports.class_markdown(summary)
    (out / "summary.md").write_text(md, encoding="utf-8")
    (out / "junit.xml").write_text(class_junit(lab, grades), encoding="utf-8")
    try:
        reports.histogram(summary, out / "histogram.png")
    except ImportError:
        if warn:
            warn("no histogram: it needs matplotlib (pip install 'labcoat[plot]')")
    reports.append_step_summary(md, os.environ.get("GITHUB_STEP_SUMMARY"))
    return summary


# A shard's summary.json or a student's results.json: far larger than any report lab grade writes
# (a class summary is ~1 KB a student), small enough that a forged one cannot exhaust memory.
MAX_REPORT = 64 << 20


def _load(path: Path) -> dict[str, Any]:
    """A report of a shard (an artifact downloaded from CI runners: read as untrusted, regular files only)."""
    from labcoat.content.files import FileProblem, read_text_bounded

    try:
        data = json.loads(read_text_bounded(path, MAX_REPORT))
    except FileProblem as exc:
        raise UsageProblem(f"cannot read {path}: it {exc.message}", hint="give the --out folders of the shards") from None
    except ValueError as exc:
        raise UsageProblem(f"{path} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UsageProblem(f"{path} is not a labcoat report")
    return data


def merge(shards: list[Path], out: Path, *, allow_partial: bool = False, warn: Any = None) -> dict[str, Any]:
    """Merge the --out folders of a sharded class into `out`; return the class summary."""
    if not shards:
        raise UsageProblem("nothing to merge", hint="lab grade merge OUT1 OUT2 ... --out CLASS")
    lab: dict[str, Any] | None = None
    grades: list[dict[str, Any]] = []
    seen: dict[str, Path] = {}
    parts_seen: set[int] = set()
    total = None
    out = Path(out)
    for folder in shards:
        folder = Path(folder)
        summary = _load(folder / "summary.json")
        if summary.get("kind") != "labcoat.class":
            raise UsageProblem(f"{folder / 'summary.json'} is not a class summary (kind labcoat.class)")
        info = {"id": summary.get("lab"), "title": summary.get("title"), "pass_mark": summary.get("pass_mark"),
                "parts": summary.get("parts", [])}
        if lab is None:
            lab = info
        elif info != lab:
            raise UsageProblem(f"{folder} graded lab {info['id']} parts {info['parts']}, the first shard lab "
                               f"{lab['id']} parts {lab['parts']}", hint="merge the shards of one run only")
        shard = summary.get("shard") or {}
        if shard:
            if total is not None and shard.get("n") != total:
                raise UsageProblem(f"{folder} is shard {shard.get('k')}/{shard.get('n')}, others are of {total}")
            total = shard.get("n")
            if shard.get("k") in parts_seen:
                raise UsageProblem(f"shard {shard.get('k')}/{total} is given twice ({folder})")
            parts_seen.add(shard.get("k"))
        for row in summary.get("students", []):
            name = str(row.get("student"))
            if name in seen:
                raise UsageProblem(f"student {name} is in {seen[name]} and in {folder}",
                                   hint="each submission is graded in exactly one shard")
            seen[name] = folder
            grades.append(_load(folder / name / "results.json"))
    if total is not None and parts_seen != set(range(1, total + 1)) and not allow_partial:
        missing = sorted(set(range(1, total + 1)) - parts_seen)
        raise UsageProblem(f"shard(s) {', '.join(f'{k}/{total}' for k in missing)} missing",
                           hint="give every shard's --out folder, or --allow-partial to merge what is there")
    assert lab is not None
    out.mkdir(parents=True, exist_ok=True)
    for name, folder in seen.items():
        if (folder / name).resolve() != (out / name).resolve():
            shutil.copytree(folder / name, out / name, dirs_exist_ok=True)
    return write_class(out, lab, grades, warn=warn)
