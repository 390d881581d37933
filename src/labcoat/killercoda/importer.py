"""`lab import killercoda DIR OUT`: any Killercoda scenario as a labcoat content folder.

Over 500 lines on purpose: one field-by-field translation of a Killercoda scenario, read top to bottom.

How each Killercoda field becomes labcoat content (docs/killercoda.md has the table):

* every step becomes a part `stepN` (N counts from 1, so part ids match the scenario's step
  numbers); a step **without a `verify` script** becomes a *follow-along* part
  (`follow_along: true`, 0 points): `lab check` says there is nothing to verify there and
  selftest skips it;
* `verify` becomes a pytest-testinfra check (`checks/kc_<slug>/test_kc_<slug>_stepN.py`) that
  runs the script inside the sandbox as root from /root and passes on exit 0; on failure it
  shows the script's output. The script lives only in the check file on the host: the check
  sends it base64-encoded in its command, decodes it into a root-only temporary folder,
  runs it with bash and deletes it, so the sandbox never holds it between checks;
* the intro's `background` script and the `assets` become scenario `kc-<slug>-intro`, which
  the first part prepares; a step's own `background` becomes `kc-<slug>-stepN`, prepared by
  that part. Each script runs once per sandbox (as on Killercoda): a marker under
  /run/labcoat/kc/ makes a repeated preparation (selftest before every attempt) skip it;
* `foreground` scripts run after their page's background, in the learner's shell context:
  sourced by a bash in /root with /etc/profile, and what they export and the folder they
  end in are kept for the learner's shell (`lab shell`); a failing one is not fatal (on
  Killercoda it just prints in the terminal);
* a background script that fails stops the preparation with its name, its exit status and
  the tail of its output (and, offline, a word on `--network`);
* an export of labcoat itself (`assets/labcoat-export.json` beside the content tarball) is
  restored as the content it carries: the original lab, quiz, checks and scenarios;
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
import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from labcoat.errors import ContentError, UsageProblem
from labcoat.killercoda.format import (
    ASSETS_DIR,
    AssetCollision,
    Page,
    Scenario,
    ScenarioError,
    copy_scenario,
    read_scenario,
    read_text,
    resolve_assets,
    why_missing,
)

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
# ANSI escape sequences and C0/C1 control characters other than newline and tab
_UNSAFE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|[\x00-\x08\x0b-\x1f\x7f-\x9f]")
FOLLOW_ALONG_WHY = "a follow-along step (no verify script): there is nothing to verify"
EXPORT_MARKER = "labcoat-export.json"  # in assets/ of an export written by `lab export killercoda`
MAX_MARKER_BYTES = 64 << 10  # the marker is read with this bound (it is ~100 bytes)
FOREGROUND_TIMEOUT = 120
MAX_CONTENT_BYTES = 64 << 20  # unpacked content of a labcoat export
MAX_ASSET_BYTES = 8 << 20  # assets travel inside the generated scenario YAML


def safe_text(text: str) -> str:
    """`text` without terminal escape sequences and control characters (newlines and tabs stay)."""
    return _UNSAFE.sub("", text)


@dataclass
class StepImport:
    part: str
    title: str
    solution_from: str
    background: bool = False
    foreground: bool = False
    follow_along: bool = False


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
                extra.append("its foreground runs in the learner's shell")
            what = ("follow-along (no verify: nothing to check)" if p.follow_along
                    else f"verify -> check; solution from {p.solution_from}")
            out.append(f"  {p.part}: {p.title!r}: {what}" + (f" ({'; '.join(extra)})" if extra else ""))
        if self.ignored:
            out.append("ignored keys: " + ", ".join(self.ignored))
        out += [f"note: {n}" for n in self.notes]
        out += [f"warning: {w}" for w in self.warnings]
        return [safe_text(line) for line in out]

    def to_dict(self) -> dict[str, Any]:
        return {"lab": self.lab_id, "out": str(self.out), "title": safe_text(self.title),
                "parts": [p.__dict__ for p in self.parts], "ignored": [safe_text(i) for i in self.ignored],
                "notes": [safe_text(n) for n in self.notes], "warnings": [safe_text(w) for w in self.warnings]}


# ----------------------------------------------------------------------------- helpers


def slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug or "scenario"


def _read(sc: Scenario, rel: str | None, what: str, report: ImportReport) -> str | None:
    if not rel:
        return None
    try:
        text = read_text(sc.root, rel)
    except ScenarioError as exc:
        raise UsageProblem(f"{what}: {exc}") from None
    if text is None:
        report.warnings.append(f"{what}: {rel} {why_missing(sc.root, rel)}; left out")
    return text


def clean_text(text: str) -> tuple[str, bool]:
    """Markdown with Killercoda's `{{exec}}`/`{{copy}}` click-to-run annotations (and any terminal
    escape sequence or control character) removed."""
    cleaned = safe_text(_KC_ANNOTATION.sub("", text))
    return cleaned, cleaned != text


def solution_from_text(text: str) -> str | None:
    """The fenced code of a `<details><summary>Solution</summary>` block, or None."""
    blocks = []
    for block in _SOLUTION_BLOCK.findall(text):
        blocks += [code.strip("\n") for code in _FENCE.findall(block)]
    return "\n".join(blocks) + "\n" if blocks else None


def find_solution(sc: Scenario, step: Page, n: int, text: str, report: ImportReport) -> tuple[str | None, str]:
    """A step's solution script and where it came from: its "solution" key (a file, or the script
    itself), a solution.sh beside verify.sh (or stepN/solution.sh), the text's Solution block."""
    if step.solution:
        found = _read_quiet(sc, step.solution)
        if found is not None:
            return found, f"the step's \"solution\" key ({step.solution})"
        if "\n" in step.solution or " " in step.solution.strip():
            return step.solution.rstrip("\n") + "\n", "the step's \"solution\" key (an inline script)"
        report.warnings.append(f"step {n}: \"solution\": {step.solution} does not exist; looked elsewhere")
    candidates = []
    if step.verify:
        folder = Path(step.verify).parent.as_posix()
        candidates.append(f"{folder}/solution.sh" if folder != "." else "solution.sh")
    candidates += [f"step{n}/solution.sh", f"step{n}-solution.sh"]
    for rel in dict.fromkeys(candidates):
        found = _read_quiet(sc, rel)
        if found is not None:
            return found, rel
    found = solution_from_text(text)
    if found:
        return found, "the step text's Solution block"
    return None, "nowhere"


def _read_quiet(sc: Scenario, rel: str) -> str | None:
    try:
        return read_text(sc.root, rel)
    except ScenarioError:
        return None


PLACEHOLDER_SOLUTION = "echo 'this Killercoda step came without a solution' >&2\nexit 1\n"


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


RUN_ONCE = """# labcoat: run a Killercoda script once per sandbox (written by `lab import killercoda`).
# usage: run-once.sh NAME LABEL MODE(background|terminal) NETWORK(0|1)
f=@RUN_DIR@/$1; label=$2; mode=$3; net=$4
if [ -e "$f.done" ]; then rm -f "$f.b64"; exit 0; fi
base64 -d "$f.b64" > "$f.sh" && rm -f "$f.b64" || { echo "cannot unpack $label" >&2; exit 97; }
if [ "$mode" = terminal ]; then
  timeout @TIMEOUT@ bash @RUN_DIR@/terminal.sh "$f.sh" > "$f.log" 2>&1
  rc=$?
  grep -q killercoda-terminal /root/.bashrc 2>/dev/null ||
    echo '[ -r /root/.killercoda-terminal ] && . /root/.killercoda-terminal' >> /root/.bashrc
  rm -f "$f.sh"; touch "$f.done"
  if [ $rc != 0 ]; then echo "$label exited $rc in the learner's shell (not fatal); its last lines:"; tail -n 5 "$f.log"; fi
  exit 0
fi
(cd /root 2>/dev/null || cd /; bash "$f.sh" </dev/null) > "$f.log" 2>&1
rc=$?
rm -f "$f.sh"
if [ $rc = 0 ]; then touch "$f.done"; exit 0; fi
echo "$label exited $rc; its last lines:" >&2
tail -n 15 "$f.log" | cut -c1-300 >&2
[ "$net" = 1 ] || echo "(the sandbox has no network: if this script downloads, import with --network)" >&2
exit $rc
""".replace("@RUN_DIR@", RUN_DIR).replace("@TIMEOUT@", str(FOREGROUND_TIMEOUT))

# Sources a script the way the learner's terminal would run it; what it exports and the folder it
# ends in are saved for the learner's shell (sourced from /root/.bashrc) and the next foreground.
TERMINAL = r"""# labcoat: source a Killercoda foreground script in the learner's shell context.
cd /root 2>/dev/null || cd /
export HOME=/root
[ -r /etc/profile ] && . /etc/profile >/dev/null 2>&1
[ -r /root/.killercoda-terminal ] && . /root/.killercoda-terminal
_kc_save() {
  export -p | grep -v -E '^declare -x (PWD|OLDPWD|SHLVL|_)=' > /root/.killercoda-terminal
  printf 'cd %q 2>/dev/null\n' "$PWD" >> /root/.killercoda-terminal
}
trap _kc_save EXIT
. "$1" </dev/null
"""


def _script_steps(name: str, label: str, script: str, *, mode: str = "background", network: bool = False,
                  timeout: int = 600) -> list[dict[str, Any]]:
    """Scenario steps that run `script` once per sandbox (a background: bash from /root; a
    foreground: in the learner's shell context), then delete it; a failure names the script."""
    encoded = base64.b64encode(script.encode()).decode()
    cmd = (f"bash {RUN_DIR}/run-once.sh {shlex.quote(name)} {shlex.quote(label)} {mode} "
           f"{1 if network else 0}")
    return [{"write_file": {"path": f"{RUN_DIR}/run-once.sh", "content": RUN_ONCE, "mode": 0o700}},
            {"write_file": {"path": f"{RUN_DIR}/terminal.sh", "content": TERMINAL, "mode": 0o700}},
            {"write_file": {"path": f"{RUN_DIR}/{name}.b64", "content": encoded, "mode": 0o600}},
            {"run": {"cmd": cmd, "timeout": timeout}}]


def _asset_steps(sc: Scenario, report: ImportReport) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    for asset in sc.assets:
        if asset.host not in ("host01", "client"):
            report.notes.append(f"assets.{asset.host}: copied into the one sandbox (labcoat has one host)")
    resolved = resolve_assets(sc.root, sc.assets)
    total = sum(src.stat().st_size for src, _, _ in resolved)
    if total > MAX_ASSET_BYTES:
        raise UsageProblem(f"the scenario's assets add up to {total >> 20} MiB; an import carries at most "
                           f"{MAX_ASSET_BYTES >> 20} MiB (they are written into the lab's scenario files)",
                           hint="fetch big files in a background script instead (with --network)")
    for src, dest, chmod in resolved:
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
    try:
        sc = read_scenario(src)
    except ScenarioError as exc:
        raise UsageProblem(safe_text(str(exc)), hint="pass the folder that holds the scenario's index.json") from None
    if lab_id is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", lab_id):
        raise UsageProblem(f"{safe_text(lab_id)!r} cannot be a lab id", hint="letters, digits, '.', '_' and '-' only")
    if out.exists() and any(out.iterdir()):
        if not force:
            raise UsageProblem(f"{out} is not empty", hint="pass --force to write over it")
        for name in ("labs", "checks", "scenarios", "quizzes", "images"):
            shutil.rmtree(out / name, ignore_errors=True)
    marker = src / ASSETS_DIR / EXPORT_MARKER
    if os.path.lexists(marker):  # whatever it is (a FIFO, a link out): restore_export refuses what is no marker
        return restore_export(src, out, lab_id=lab_id)
    if lab_id is None:
        slug = slugify(src.resolve().name)
        lab_id = slug if slug.startswith("kc-") else f"kc-{slug}"
    sslug = slugify(lab_id)  # scenario ids and folder names
    pkg = "kc_" + sslug.removeprefix("kc-").replace("-", "_")
    report = ImportReport(lab_id=lab_id, out=out, title=safe_text(sc.title), ignored=[safe_text(i) for i in sc.ignored],
                          notes=list(sc.notes))
    image_dir = image_dir or default_image_dir()
    if not (image_dir / "image.yaml").is_file():
        raise UsageProblem(f"no sandbox image recipe at {image_dir}", hint="pass the folder of images/sandbox")
    if not sc.steps:
        raise UsageProblem(f"{src}: the scenario has no steps", hint="details.steps lists the scenario's steps")
    created = not out.exists()
    try:
        return _import(sc, src, out, lab_id, sslug, pkg, report, memory, network, image_dir)
    except AssetCollision as exc:
        raise UsageProblem(safe_text(str(exc)), hint="give the assets different names, or keep their folders with "
                           "a `**` pattern") from None
    except ScenarioError as exc:
        raise UsageProblem(safe_text(str(exc))) from None
    finally:
        if created and sys.exc_info()[0] is not None:  # a failed import leaves nothing it made
            shutil.rmtree(out, ignore_errors=True)


def _intro_markdown(sc: Scenario, intro: str | None) -> str:
    """The lab's intro: the scenario's title and description, then its intro text (its own heading,
    when it starts with one, replaces the title; the description is kept either way)."""
    description = sc.description.strip()
    if intro and intro.lstrip().startswith("#"):
        if not description or description in intro:
            return intro
        heading, _, rest = intro.lstrip().partition("\n")
        return f"{heading}\n\n{description}\n\n{rest.lstrip()}"
    return f"# {sc.title}\n\n" + (description + "\n\n" if description else "") + (intro or "")


def _import(sc: Scenario, src: Path, out: Path, lab_id: str, sslug: str, pkg: str, report: ImportReport,
            memory: str, network: bool, image_dir: Path) -> ImportReport:
    labdir = out / "labs" / lab_id
    intro = _read(sc, sc.intro.text if sc.intro else None, "intro.text", report)
    intro_md, changed = clean_text(_intro_markdown(sc, intro))
    _write(labdir / "intro.md", intro_md.rstrip() + "\n\nWork with `lab shell`; check a step with `lab check stepN`.\n")
    finish = _read(sc, sc.finish.text if sc.finish else None, "finish.text", report)
    if finish:
        _write(labdir / "finish.md", finish)
        report.notes.append(f"the finish page is kept in labs/{lab_id}/finish.md (labcoat has no finish page)")
    if sc.finish and (sc.finish.background or sc.finish.foreground):
        report.notes.append("the finish page's scripts are not run: nothing is checked after them")
    _write(labdir / "decoys" / f"{DECOY_NAME}.sh",
           "# Decoy: do nothing at all. The checks must fail on an untouched sandbox.\n")
    # a copy of the scenario, for reference (on the host only, never in the sandbox); regular files
    # inside the folder only, bounded
    copy_scenario(src, labdir / "killercoda")

    scenario_files: dict[str, list[dict[str, Any]]] = {}
    titles: dict[str, str] = {}
    intro_steps = _asset_steps(sc, report)
    all_scripts: list[str] = []
    if sc.intro:
        intro_steps += _page_scripts(sc, sc.intro, "intro", report, network, all_scripts)
    if intro_steps:
        scenario_files[f"{sslug}-intro"] = intro_steps
        titles[f"{sslug}-intro"] = "assets and the intro's scripts"

    parts: list[dict[str, Any]] = []
    for i, step in enumerate(sc.steps):
        n = i + 1
        part_id = f"step{n}"
        title = safe_text(step.title or f"Step {n}").strip() or f"Step {n}"
        text = _read(sc, step.text, f"steps[{i}].text", report) or ""
        text, changed_here = clean_text(text)
        changed = changed or changed_here
        info = StepImport(part=part_id, title=title, solution_from="", follow_along=not step.verify)
        _write(labdir / f"{part_id}.md", (text if text.lstrip().startswith("#") else f"# {title}\n\n{text}").rstrip()
               + "\n")
        prepare = []
        if not parts and f"{sslug}-intro" in scenario_files:
            prepare.append(f"{sslug}-intro")
        page_steps = _page_scripts(sc, step, part_id, report, network, all_scripts)
        if page_steps:
            scenario_files[f"{sslug}-{part_id}"] = page_steps
            titles[f"{sslug}-{part_id}"] = f"{part_id}'s scripts"
            prepare.append(f"{sslug}-{part_id}")
        info.background, info.foreground = bool(step.background), bool(step.foreground)
        solution, info.solution_from = find_solution(sc, step, n, text, report)
        part: dict[str, Any] = {"id": part_id, "title": title, "instructions": f"{lab_id}/{part_id}.md"}
        if step.verify:
            verify = _read(sc, step.verify, f"steps[{i}].verify", report)
            if verify is None:
                raise UsageProblem(f"step {n}'s verify script {safe_text(step.verify)} is missing from {src} "
                                   "(or points outside it)")
            all_scripts.append(verify)
            if solution is None:
                report.warnings.append(f"step {n}: no solution (no \"solution\" key, no solution.sh, no Solution "
                                       "block in the text): a placeholder that fails was written, so selftest "
                                       "cannot prove this step")
                solution, info.solution_from = PLACEHOLDER_SOLUTION, "nowhere (placeholder)"
            _write(out / "checks" / pkg / f"test_{pkg}_{part_id}.py", check_source(sc.title, lab_id, part_id, title,
                                                                                  verify))
            part |= {"points": POINTS, "prepare": prepare, "checks": f"{pkg}/test_{pkg}_{part_id}.py"}
        else:
            _write(out / "checks" / pkg / "follow_along.py", FOLLOW_ALONG_CHECKS)
            if solution is None:
                solution, info.solution_from = "# a follow-along step: nothing to do for a check\n", "nowhere"
            part |= {"points": 0, "follow_along": True, "prepare": prepare, "checks": f"{pkg}/follow_along.py"}
        _write(labdir / "solutions" / f"{part_id}.sh", solution)
        part |= {"solution": f"{lab_id}/solutions/{part_id}.sh",
                 "decoys": [{"name": DECOY_NAME, "script": f"{lab_id}/decoys/{DECOY_NAME}.sh", "why": DECOY_WHY}]}
        parts.append(part)
        report.parts.append(info)
    follow = [p.part for p in report.parts if p.follow_along]
    if follow:
        report.notes.append(f"follow-along parts (no verify script, nothing to check, 0 points): {', '.join(follow)}")
    if changed:
        report.notes.append("Killercoda's {{exec}}/{{copy}} annotations were removed from the text")
    if any(p.background for p in report.parts):
        report.notes.append("step backgrounds run when the lab starts (all of them, in order), not when the learner "
                            "reaches the step as on Killercoda")
    if sc.imageid:
        report.notes.append(f"backend.imageid {safe_text(sc.imageid)!r} -> labcoat's `sandbox` image (Debian, no "
                            "Docker, no systemd" + (", network on)" if network else ", no network)"))
        if any(k in sc.imageid for k in ("kubernetes", "k3s", "k8s")):
            report.warnings.append(f"the scenario runs on {safe_text(sc.imageid)!r}: Kubernetes is not in labcoat's "
                                   "sandbox")
    if not network and any(_NETWORK_HINTS.search(s) for s in all_scripts):
        report.warnings.append("its scripts use commands that need the network or tools the sandbox lacks "
                               "(apt-get, curl, docker, ...): the sandbox has no network unless --network")

    for sc_id, steps in scenario_files.items():
        _dump(out / "scenarios" / f"{sc_id}.yaml", {
            "schema_version": 1, "id": sc_id, "title": f"{report.title}: {titles[sc_id]}",
            "description": "Generated by `lab import killercoda`; each script runs once per sandbox.",
            "steps": steps,
        }, header="# Generated by `lab import killercoda` from the scenario in "
                  f"labs/{lab_id}/killercoda/.\n")
    sandbox: dict[str, Any] = {"image": "sandbox", "memory": memory}
    if network:
        sandbox["network"] = True
    _dump(out / "labs" / f"{lab_id}.yaml", {
        "schema_version": 1, "id": lab_id, "title": report.title, "intro": f"{lab_id}/intro.md",
        "sandbox": sandbox, "parts": parts,
    }, header=f"# Imported from a Killercoda scenario by `lab import killercoda` (original: labs/{lab_id}/"
              "killercoda/).\n")
    (out / "quizzes").mkdir(parents=True, exist_ok=True)
    shutil.copytree(image_dir, out / "images" / "sandbox", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    return report


FOLLOW_ALONG_CHECKS = (
    '"""Follow-along steps of a Killercoda scenario: they had no verify script, so there is nothing\n'
    "to check here. Their parts say `follow_along: true`; `lab check` reports them as skipped with\n"
    'that reason, selftest and grading skip them. (Generated by `lab import killercoda`.)\n"""\n'
)


def _page_scripts(sc: Scenario, page: Page, tag: str, report: ImportReport, network: bool,
                  all_scripts: list[str]) -> list[dict[str, Any]]:
    """Scenario steps for a page's background (hidden, fatal on failure) and foreground (the
    learner's shell context, after the background: on Killercoda it mostly waits for it)."""
    steps: list[dict[str, Any]] = []
    for key, mode in (("background", "background"), ("foreground", "terminal")):
        rel = getattr(page, key)
        script = _read(sc, rel, f"{page.where}.{key}", report)
        if script is None:
            continue
        all_scripts.append(script)
        label = re.sub(r"[^A-Za-z0-9_./ -]", "_", f"{tag} {key} {rel}")[:120]
        steps += _script_steps(f"{tag}-{key}", label, script, mode=mode, network=network)
    return steps


def restore_export(src: Path, out: Path, *, lab_id: str | None = None) -> ImportReport:
    """An export written by `lab export killercoda`: restore the content it carries, as it was.

    The marker (assets/labcoat-export.json) names the lab and the content tarball; the
    tarball is unpacked with tarfile's `data` filter (no links out, no devices, no absolute
    paths), only its content folders, bounded in size. Wheels and the scenario's generated
    text are not imported: the original YAML, Markdown and checks are.
    """
    import json
    import tarfile

    from labcoat.content.catalog import CONTENT_DIRS
    from labcoat.content.files import FileProblem, inside, read_text_bounded

    marker = src / ASSETS_DIR / EXPORT_MARKER
    try:
        if not inside(marker, src.resolve()):
            raise FileProblem("points outside the scenario's folder")
        # bounded: a marker is ~100 bytes; a huge (or endless) file must not be read whole
        meta = json.loads(read_text_bounded(marker, MAX_MARKER_BYTES))
        original, tarball = str(meta["lab"]), str(meta["content"])
    except (FileProblem, ValueError, KeyError, TypeError, OSError, RecursionError):
        raise UsageProblem(f"{marker} is not a labcoat export marker") from None
    if lab_id not in (None, original):
        raise UsageProblem(f"this is labcoat's own export of lab {safe_text(original)}: it is restored as that lab",
                           hint="leave out --id")
    path = src / ASSETS_DIR / tarball
    if "/" in tarball or not path.is_file() or not path.resolve().is_relative_to(src.resolve()):
        raise UsageProblem(f"the export's content tarball {safe_text(tarball)} is missing")
    report = ImportReport(lab_id=original, out=out, title=f"labcoat lab {original}")
    total = 0
    try:
        with tarfile.open(path, "r:gz") as tar:
            members = []
            for member in tar:
                if member.name.split("/", 1)[0] not in CONTENT_DIRS:
                    continue
                total += max(member.size, 0)
                if total > MAX_CONTENT_BYTES:
                    raise UsageProblem(f"the export's content unpacks to more than {MAX_CONTENT_BYTES >> 20} MiB")
                members.append(member)
            out.mkdir(parents=True, exist_ok=True)
            tar.extractall(out, members=members, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise UsageProblem(f"the export's content tarball cannot be unpacked: {safe_text(str(exc))}") from None
    for name in CONTENT_DIRS:
        (out / name).mkdir(parents=True, exist_ok=True)
    report.notes.append(f"a labcoat export: the content it carries ({tarball}) was restored as it was: "
                        f"lab {original} with its parts, points, decoys, provocations, sandboxes and quiz")
    from labcoat.content.catalog import Catalog

    catalog = Catalog.load(out, strict=False)
    if original in catalog.labs:
        lab = catalog.lab(original)
        report.title = lab.title
        report.parts = [StepImport(part=p.id, title=p.title, solution_from=p.solution, follow_along=p.follow_along)
                        for p in lab.parts]
    else:
        report.warnings.append(f"the restored content has no valid lab {safe_text(original)}")
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
        if "follow-along" in stages:
            lines.append(f"- {part}: follow-along (no verify script): nothing to verify, skipped")
            continue
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
