"""`lab import killercoda DIR OUT`: any Killercoda scenario as a labcoat content folder.

How each Killercoda field becomes labcoat content (docs/killercoda.md has the table):

* every step **with a `verify` script** becomes a part `stepN` (N counts from 1 over all steps,
  so part ids match the scenario's step numbers); a step without one has nothing to grade,
  so its text is put before the next graded step's text (after the last one: appended to it);
* `verify` becomes a pytest-testinfra check (`checks/kc_<slug>/test_kc_<slug>_stepN.py`) that
  runs the script inside the sandbox as root from /root and passes on exit 0; on failure it
  shows the script's output. The script lives only in the check file on the host: the check
  sends it base64-encoded in its command, decodes it into a root-only temporary folder,
  runs it with bash and deletes it, so the sandbox never holds it between checks;
* the intro's `background` script and the `assets` become scenario `kc-<slug>-intro`, which
  the first part prepares; a step's own `background` becomes `kc-<slug>-stepN`, prepared by
  that part. Each script runs once per sandbox (as on Killercoda): a marker under
  /run/labcoat/kc/ makes a repeated preparation (selftest before every attempt) skip it;
* `foreground` scripts are not run (on Killercoda they run in the learner's terminal, mostly
  to wait for the background or to show something); they are kept and reported;
* the solution: a step's `"solution"` key (a file, or the script itself), else a
  `solution.sh` beside the verify script (or `stepN/solution.sh`), else the fenced code in
  the text's `<details><summary>Solution</summary>` block, else a placeholder that fails
  (selftest then reports the step as unproven);
* the decoy of every part is "do nothing" (an empty script): the checks must fail on an
  untouched sandbox, so a verify script that passes without any work is caught;
* `backend.imageid` (whatever it is) becomes labcoat's `sandbox` image, copied into the
  output folder so that `lab --content OUT` finds it; `interface`, Katacoda's `difficulty`,
  `time` and anything else unknown are ignored and listed in the report.
"""

from __future__ import annotations

import base64
import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from labcoat.errors import ContentError, UsageProblem
from labcoat.killercoda.format import Page, Scenario, read_scenario, resolve_assets, scenario_file

RUN_DIR = "/run/labcoat/kc"
DECOY_NAME = "untouched-sandbox"
DECOY_WHY = ("does nothing at all: a verify script that passes on an untouched sandbox does not check the "
             "step's task")
POINTS = 10
# A command line is one argv string inside the sandbox: Linux caps one at 128 KiB.
MAX_VERIFY_B64 = 100_000
VERIFY_TIMEOUT = 25  # seconds; the check's own command times out at 30
_NETWORK_HINTS = re.compile(r"\b(apt-get|apt|curl|wget|pip3?|git clone|docker|kubectl|helm|snap)\b")
_KC_ANNOTATION = re.compile(r"\{\{\s*(exec|execute|copy)[^}]*\}\}")
_SOLUTION_BLOCK = re.compile(r"<details>\s*<summary>\s*(?:show\s+)?solution\s*</summary>(.*?)</details>",
                             re.IGNORECASE | re.DOTALL)
_FENCE = re.compile(r"```[^\n]*\n(.*?)```", re.DOTALL)


@dataclass
class StepImport:
    part: str
    title: str
    solution_from: str
    background: bool = False
    foreground: bool = False
    folded: list[str] = field(default_factory=list)  # titles of ungraded steps put into this part's text


@dataclass
class ImportReport:
    lab_id: str
    out: Path
    title: str
    parts: list[StepImport] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"imported \"{self.title}\" as lab {self.lab_id} in {self.out}"]
        for p in self.parts:
            extra = []
            if p.background:
                extra.append("its background prepares it")
            if p.foreground:
                extra.append("foreground not run")
            if p.folded:
                extra.append("text of ungraded step(s) " + ", ".join(repr(t) for t in p.folded) + " included")
            out.append(f"  {p.part}: {p.title!r}: verify -> check; solution from {p.solution_from}"
                       + (f" ({'; '.join(extra)})" if extra else ""))
        if self.ignored:
            out.append("ignored keys: " + ", ".join(self.ignored))
        out += [f"note: {n}" for n in self.notes]
        out += [f"warning: {w}" for w in self.warnings]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"lab": self.lab_id, "out": str(self.out), "title": self.title,
                "parts": [p.__dict__ for p in self.parts], "ignored": self.ignored, "notes": self.notes,
                "warnings": self.warnings}


# ----------------------------------------------------------------------------- helpers


def slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug or "scenario"


def _read(sc: Scenario, rel: str | None, what: str, report: ImportReport) -> str | None:
    if not rel:
        return None
    path = scenario_file(sc.root, rel)
    if path is None:
        report.warnings.append(f"{what}: {rel} does not exist in the scenario; left out")
        return None
    return path.read_text(encoding="utf-8", errors="replace")


def clean_text(text: str) -> tuple[str, bool]:
    """Markdown with Killercoda's `{{exec}}`/`{{copy}}` click-to-run annotations removed."""
    cleaned = _KC_ANNOTATION.sub("", text)
    return cleaned, cleaned != text


def solution_from_text(text: str) -> str | None:
    """The fenced code of a `<details><summary>Solution</summary>` block, or None."""
    blocks = []
    for block in _SOLUTION_BLOCK.findall(text):
        blocks += [code.strip("\n") for code in _FENCE.findall(block)]
    return "\n".join(blocks) + "\n" if blocks else None


def _find_solution(sc: Scenario, step: Page, n: int, text: str, report: ImportReport) -> tuple[str, str]:
    if step.solution:
        path = scenario_file(sc.root, step.solution)
        if path is not None:
            return path.read_text(encoding="utf-8", errors="replace"), f"the step's \"solution\" key ({step.solution})"
        if "\n" in step.solution or " " in step.solution.strip():
            return step.solution.rstrip("\n") + "\n", "the step's \"solution\" key (an inline script)"
        report.warnings.append(f"step {n}: \"solution\": {step.solution} does not exist; looked elsewhere")
    candidates = []
    if step.verify:
        folder = Path(step.verify).parent.as_posix()
        candidates.append(f"{folder}/solution.sh" if folder != "." else "solution.sh")
    candidates += [f"step{n}/solution.sh", f"step{n}-solution.sh"]
    for rel in dict.fromkeys(candidates):
        path = scenario_file(sc.root, rel)
        if path is not None:
            return path.read_text(encoding="utf-8", errors="replace"), rel
    found = solution_from_text(text)
    if found:
        return found, "the step text's Solution block"
    report.warnings.append(f"step {n}: no solution (no \"solution\" key, no solution.sh, no Solution block in "
                           "the text): a placeholder that fails was written, so selftest cannot prove this step")
    return ("echo 'this Killercoda step came without a solution' >&2\nexit 1\n", "nowhere (placeholder)")


def _py_string(text: str) -> str:
    """A Python literal for `text`, one source line per line of the script."""
    lines = text.splitlines(keepends=True) or [""]
    return "(\n" + "".join(f"    {line!r}\n" for line in lines) + ")"


def check_source(title: str, lab_id: str, part: str, step_title: str, script: str) -> str:
    encoded = base64.b64encode(script.encode()).decode()
    if len(encoded) > MAX_VERIFY_B64:
        raise ContentError(f"{part}'s verify script is too long to send in one command "
                           f"({len(script)} bytes; at most {MAX_VERIFY_B64 * 3 // 4})")
    doc = step_title.replace('"""', "'''").replace("\\", "/")
    return f'''"""{part} of lab {lab_id}, imported from the Killercoda scenario {title!r}.

The step's verify script runs inside the sandbox, as root, from /root; it passes on exit 0.
It is kept here, on the host: the check sends it base64-encoded in its command, decodes it
into a root-only temporary folder, runs it with bash and deletes it, so the sandbox never
holds it between checks. On failure the check shows what the script printed.
"""

from __future__ import annotations

import base64

from labcoat.testing import expect

VERIFY = {_py_string(script)}
TIMEOUT = {VERIFY_TIMEOUT}
CANNOT_RUN = 97


def command(script: str) -> str:
    encoded = base64.b64encode(script.encode()).decode()
    return (
        "umask 077; d=$(mktemp -d /tmp/.labcoat-verify.XXXXXX) || exit 97; "
        f"printf %s {{encoded}} | base64 -d > \\"$d/verify.sh\\" || {{{{ rm -rf \\"$d\\"; exit 97; }}}}; "
        "cd /root 2>/dev/null || cd /; "
        f"timeout {{TIMEOUT}} bash \\"$d/verify.sh\\" </dev/null 2>&1; rc=$?; rm -rf \\"$d\\"; exit $rc"
    )


def test_verify_script(host):
    """{doc}: the step's verify script exits 0."""
    result = host.run(command(VERIFY))
    output = (result.stdout + result.stderr).strip()
    if result.rc == CANNOT_RUN:
        raise RuntimeError(f"could not put the verify script into the sandbox: {{output[-400:]}}")
    if result.rc == 124:
        output = f"(it did not finish within {{TIMEOUT}} s) " + output
    expect(result.rc == 0, expected="the step's verify script to exit 0",
           found=f"exit {{result.rc}}" + (f"; it printed:\\n{{output[-1500:]}}" if output else " (it printed nothing)"),
           hint="read the step again: `lab show {part}`")
'''


def _script_steps(name: str, script: str, timeout: int = 600) -> list[dict[str, Any]]:
    """Scenario steps that run `script` once per sandbox (bash, from /root), then delete it."""
    f = f"{RUN_DIR}/{name}"
    encoded = base64.b64encode(script.encode()).decode()
    cmd = (f"f={f}; if [ -e $f.done ]; then rm -f $f.b64; exit 0; fi; "
           "base64 -d $f.b64 > $f.sh && rm -f $f.b64 || exit 97; "
           "cd /root 2>/dev/null || cd /; bash $f.sh </dev/null; rc=$?; rm -f $f.sh; "
           "if [ $rc = 0 ]; then touch $f.done; fi; exit $rc")
    return [{"write_file": {"path": f"{f}.b64", "content": encoded, "mode": 0o600}},
            {"run": {"cmd": cmd, "timeout": timeout}}]


def _asset_steps(sc: Scenario, report: ImportReport) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    for asset in sc.assets:
        if asset.host not in ("host01", "client"):
            report.notes.append(f"assets.{asset.host}: copied into the one sandbox (labcoat has one host)")
    for src, dest, chmod in resolve_assets(sc.root, sc.assets):
        data = src.read_bytes()
        mode = 0o755 if chmod and "x" in chmod else 0o644
        try:
            text = data.decode("utf-8")
            plain = "${" not in text  # ${name} would be taken for a scenario variable
        except UnicodeDecodeError:
            plain = False
        if plain:
            steps.append({"write_file": {"path": dest, "content": text, "mode": mode}})
        else:
            tmp = f"{RUN_DIR}/asset-{len(steps)}.b64"
            steps.append({"write_file": {"path": tmp, "content": base64.b64encode(data).decode(), "mode": 0o600}})
            q = shlex.quote(dest)
            steps.append({"run": {"cmd": f"mkdir -p \"$(dirname {q})\" && base64 -d {tmp} > {q} && "
                                         f"chmod {mode:o} {q} && rm -f {tmp}"}})
        if chmod and chmod not in ("+x", "+w", "+r", "+rw", "+rx", "+wx", "+rwx"):
            steps.append({"run": {"cmd": f"chmod {shlex.quote(chmod)} {shlex.quote(dest)}"}})
    for asset in sc.assets:
        if not resolve_assets(sc.root, [asset]):
            report.warnings.append(f"assets.{asset.host}: {asset.file!r} matches no file under assets/; skipped")
    return steps


def _section(title: str, text: str) -> str:
    """An ungraded step's text, with its title as a heading unless the text starts with one."""
    text = text.strip()
    return (text if text.startswith("#") else f"## {title}\n\n{text}") + "\n\n"


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (file contents) as literal blocks, so generated YAML stays readable."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value and value.isprintable() is False and "\t" not in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _dump(path: Path, data: Any, header: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100,
                     allow_unicode=True)
    path.write_text(header + text, encoding="utf-8")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


# ----------------------------------------------------------------------------- the import


def default_image_dir() -> Path:
    from labcoat.content.catalog import default_content_root

    return default_content_root() / "images" / "sandbox"


def import_scenario(src: Path, out: Path, *, lab_id: str | None = None, memory: str = "512m",
                    network: bool = False, force: bool = False, image_dir: Path | None = None) -> ImportReport:
    """Write the Killercoda scenario in `src` as a content folder `out`; return what was done."""
    src, out = Path(src), Path(out)
    from labcoat.killercoda.format import ScenarioError

    try:
        sc = read_scenario(src)
    except ScenarioError as exc:
        raise UsageProblem(str(exc), hint="pass the folder that holds the scenario's index.json") from None
    if lab_id is None:
        slug = slugify(src.resolve().name)
        lab_id = slug if slug.startswith("kc-") else f"kc-{slug}"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", lab_id):
        raise UsageProblem(f"{lab_id!r} cannot be a lab id", hint="letters, digits, '.', '_' and '-' only")
    sslug = slugify(lab_id)  # scenario ids and folder names
    pkg = "kc_" + sslug.removeprefix("kc-").replace("-", "_")
    if out.exists() and any(out.iterdir()):
        if not force:
            raise UsageProblem(f"{out} is not empty", hint="pass --force to write over it")
        for name in ("labs", "checks", "scenarios", "quizzes", "images"):
            shutil.rmtree(out / name, ignore_errors=True)
    report = ImportReport(lab_id=lab_id, out=out, title=sc.title, ignored=list(sc.ignored), notes=list(sc.notes))
    image_dir = image_dir or default_image_dir()
    if not (image_dir / "image.yaml").is_file():
        raise UsageProblem(f"no sandbox image recipe at {image_dir}", hint="pass the folder of images/sandbox")

    graded = [(i, s) for i, s in enumerate(sc.steps) if s.verify]
    if not graded:
        raise UsageProblem(f"{src}: no step has a `verify` script, so there is nothing to check",
                           hint="a lab part needs a check; add verify scripts to the steps")
    labdir = out / "labs" / lab_id
    # intro
    intro = _read(sc, sc.intro.text if sc.intro else None, "intro.text", report)
    head = f"# {sc.title}\n\n" + (sc.description + "\n\n" if sc.description else "")
    intro_md = intro if intro and intro.lstrip().startswith("#") else head + (intro or "")
    intro_md, changed = clean_text(intro_md)
    _write(labdir / "intro.md", intro_md.rstrip() + "\n\nWork with `lab shell`; check a step with `lab check stepN`.\n")
    finish = _read(sc, sc.finish.text if sc.finish else None, "finish.text", report)
    if finish:
        _write(labdir / "finish.md", finish)
        report.notes.append(f"the finish page is kept in labs/{lab_id}/finish.md (labcoat has no finish page)")
    for page in (sc.intro, sc.finish):
        if page and page.foreground:
            report.notes.append(f"{page.where}.foreground ({page.foreground}) is not run: on Killercoda it runs in "
                                "the learner's terminal")
    if sc.finish and sc.finish.background:
        report.notes.append(f"finish.background ({sc.finish.background}) is not run: nothing is checked after it")
    _write(labdir / "decoys" / f"{DECOY_NAME}.sh",
           "# Decoy: do nothing at all. The checks must fail on an untouched sandbox.\n")
    # a copy of the scenario, for reference (on the host only, never in the sandbox)
    shutil.copytree(src, labdir / "killercoda", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".git", "__pycache__"))

    # scenarios: intro background and assets; step backgrounds
    scenario_files: dict[str, list[dict[str, Any]]] = {}
    intro_steps = _asset_steps(sc, report)
    intro_bg = _read(sc, sc.intro.background if sc.intro else None, "intro.background", report)
    if intro_bg is not None:
        intro_steps += _script_steps("intro-background", intro_bg)
    all_scripts = [intro_bg or ""]
    if intro_steps:
        scenario_files[f"{sslug}-intro"] = intro_steps

    parts: list[dict[str, Any]] = []
    pending_text: list[tuple[str, str]] = []  # (title, text) of ungraded steps before the next graded one
    graded_ids = {i for i, _ in graded}
    for i, step in enumerate(sc.steps):
        n = i + 1
        text = _read(sc, step.text, f"steps[{i}].text", report) or ""
        text, changed_here = clean_text(text)
        changed = changed or changed_here
        if i not in graded_ids:
            pending_text.append((step.title or f"Step {n}", text))
            if step.background:
                report.warnings.append(f"step {n} ({step.title!r}) has no verify script: its background is not "
                                       "run (there is no part to prepare)")
            continue
        part_id = f"step{n}"
        title = step.title or f"Step {n}"
        info = StepImport(part=part_id, title=title, solution_from="")
        body = "".join(_section(t, x) for t, x in pending_text)
        info.folded = [t for t, _ in pending_text]
        pending_text = []
        body += text if text.lstrip().startswith("#") else f"# {title}\n\n{text}"
        _write(labdir / f"{part_id}.md", body.rstrip() + "\n")
        verify = _read(sc, step.verify, f"steps[{i}].verify", report)
        if verify is None:
            raise UsageProblem(f"step {n}'s verify script {step.verify} is missing from {src}")
        all_scripts.append(verify)
        solution, info.solution_from = _find_solution(sc, step, n, text, report)
        _write(labdir / "solutions" / f"{part_id}.sh", solution)
        _write(out / "checks" / pkg / f"test_{pkg}_{part_id}.py",
               check_source(sc.title, lab_id, part_id, title, verify))
        prepare = []
        if not parts and f"{sslug}-intro" in scenario_files:
            prepare.append(f"{sslug}-intro")
        bg = _read(sc, step.background, f"steps[{i}].background", report)
        if bg is not None:
            scenario_files[f"{sslug}-{part_id}"] = _script_steps(f"{part_id}-background", bg)
            prepare.append(f"{sslug}-{part_id}")
            info.background = True
            all_scripts.append(bg)
        info.foreground = bool(step.foreground)
        parts.append({
            "id": part_id, "title": title, "instructions": f"{lab_id}/{part_id}.md", "points": POINTS,
            "prepare": prepare, "checks": f"{pkg}/test_{pkg}_{part_id}.py",
            "solution": f"{lab_id}/solutions/{part_id}.sh",
            "decoys": [{"name": DECOY_NAME, "script": f"{lab_id}/decoys/{DECOY_NAME}.sh", "why": DECOY_WHY}],
        })
        report.parts.append(info)
    if pending_text:  # ungraded steps after the last graded one: append their text to it
        last = report.parts[-1]
        path = labdir / f"{last.part}.md"
        path.write_text(path.read_text() + "\n" + "".join(_section(t, x) for t, x in pending_text))
        last.folded += [t for t, _ in pending_text]
    if changed:
        report.notes.append("Killercoda's {{exec}}/{{copy}} annotations were removed from the text")
    if any(p.foreground for p in report.parts):
        report.notes.append("step foreground scripts are not run: on Killercoda they run in the learner's terminal")
    if any(p.background for p in report.parts):
        report.notes.append("step backgrounds run when the lab starts (all of them, in order), not when the learner "
                            "reaches the step as on Killercoda")
    if sc.imageid:
        report.notes.append(f"backend.imageid {sc.imageid!r} -> labcoat's `sandbox` image (Debian, no Docker, no "
                            "systemd" + (", network on)" if network else ", no network)"))
        if any(k in sc.imageid for k in ("kubernetes", "k3s", "k8s")):
            report.warnings.append(f"the scenario runs on {sc.imageid!r}: Kubernetes is not in labcoat's sandbox")
    if not network and any(_NETWORK_HINTS.search(s) for s in all_scripts):
        report.warnings.append("its scripts use commands that need the network or tools the sandbox lacks "
                               "(apt-get, curl, docker, ...): the sandbox has no network unless --network")

    # write the lab, the scenarios, the image
    for sc_id, steps in scenario_files.items():
        _dump(out / "scenarios" / f"{sc_id}.yaml", {
            "schema_version": 1, "id": sc_id, "title": f"{sc.title}: " + (
                "assets and the intro's background script" if sc_id.endswith("-intro") else
                f"{sc_id.rsplit('-', 1)[1]}'s background script"),
            "description": "Generated by `lab import killercoda`; each script runs once per sandbox.",
            "steps": steps,
        }, header="# Generated by `lab import killercoda` from the scenario in "
                  f"labs/{lab_id}/killercoda/.\n")
    sandbox: dict[str, Any] = {"image": "sandbox", "memory": memory}
    if network:
        sandbox["network"] = True
    _dump(out / "labs" / f"{lab_id}.yaml", {
        "schema_version": 1, "id": lab_id, "title": sc.title, "intro": f"{lab_id}/intro.md",
        "sandbox": sandbox, "parts": parts,
    }, header=f"# Imported from a Killercoda scenario by `lab import killercoda` (original: labs/{lab_id}/"
              "killercoda/).\n")
    (out / "quizzes").mkdir(parents=True, exist_ok=True)
    shutil.copytree(image_dir, out / "images" / "sandbox", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    return report


def validate_import(out: Path) -> list[str]:
    """`lab validate` of the written folder, as messages ([] when valid)."""
    from labcoat.content.catalog import Catalog

    catalog = Catalog.load(Path(out), strict=False)
    return [str(e) for e in catalog.errors]


# ----------------------------------------------------------------------------- selftest, read per step


def selftest_summary(rows: list[dict[str, Any]]) -> list[str]:
    """Per imported step, in words: does its verify fail before and pass after the solution, and
    does it pass on an untouched sandbox (a verify script that checks nothing)?

    `rows` are `lab selftest --json`'s rows (part, stage, expected, got, ok).
    """
    by_part: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        by_part.setdefault(row["part"], {})[row["stage"]] = row
    lines = []
    for part, stages in by_part.items():
        fresh = stages.get("fresh sandbox", {})
        decoy = stages.get(f"decoy {DECOY_NAME}", {})
        sol = stages.get("solution", {})
        again = stages.get("solution again", {})
        untouched_pass = fresh.get("got") == "pass" or decoy.get("got") == "pass"
        before = "fails before the solution" if not untouched_pass else "PASSES ON AN UNTOUCHED SANDBOX"
        after = "passes after it" if sol.get("got") == "pass" else f"does NOT pass after it ({sol.get('got', '?')})"
        line = f"{part}: verify {before}, {after}"
        if sol.get("got") == "pass" and again.get("got") != "pass":
            line += f"; not after running the solution twice ({again.get('got', '?')})"
        if untouched_pass:
            line += " - the verify script does not check the step's task (it passes before any work)"
        ok = all(r.get("ok") for r in stages.values())
        lines.append(("✓ " if ok else "✗ ") + line)
    return lines
