"""Killercoda scenarios on disk: read an `index.json` folder, and validate one.

A scenario is a folder with `index.json`; every other file is referenced from it by a
path relative to that folder, except assets, which live under `assets/` and are matched
by glob patterns (`*`, `**`). See /docs/killercoda.md for what labcoat reads and writes.

Both directions share this module: `lab export killercoda` validates what it wrote with
`validate_scenario`, and `lab import killercoda` reads with `read_scenario`, which
tolerates unknown keys (and Katacoda-era ones) and lists every key it ignored.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from labcoat.content.files import FileProblem, file_kind, read_bytes_bounded

INDEX = "index.json"
ASSETS_DIR = "assets"
# A scenario is untrusted input: bounded sizes, nothing read outside its folder.
MAX_INDEX_BYTES = 1 << 20
MAX_TEXT_BYTES = 1 << 20  # one text or script
MAX_STEPS = 200
MAX_FILES = 5000
MAX_TOTAL_BYTES = 256 << 20  # the whole folder (an export with its wheels is about 16 MiB)

# Keys labcoat understands, per object. Anything else is reported as ignored.
TOP_KEYS = {"title", "description", "details", "backend", "interface"}
DETAILS_KEYS = {"intro", "steps", "finish", "assets"}
PAGE_KEYS = {"title", "text", "background", "foreground"}
STEP_KEYS = PAGE_KEYS | {"verify", "solution"}
ASSET_KEYS = {"file", "target", "chmod"}
# Katacoda called the hidden setup script `courseData` and the terminal one `code`.
KATACODA_ALIASES = {"courseData": "background", "code": "foreground"}
SCRIPT_KEYS = ("background", "foreground", "verify")


@dataclass
class Page:
    """The intro, a step or the finish page: text and scripts, as paths relative to the scenario."""

    where: str  # "intro", "steps[0]", "finish"
    title: str = ""
    text: str | None = None
    background: str | None = None
    foreground: str | None = None
    verify: str | None = None
    solution: str | None = None  # a path (when it names a file) or the script itself

    def script_path(self, key: str) -> str | None:
        return getattr(self, key)


@dataclass
class Asset:
    """One `assets.<host>` entry: a glob under assets/, the folder it goes to, and a chmod."""

    host: str
    file: str
    target: str
    chmod: str | None = None


@dataclass
class Scenario:
    root: Path
    data: dict[str, Any]
    title: str = ""
    description: str = ""
    intro: Page | None = None
    steps: list[Page] = field(default_factory=list)
    finish: Page | None = None
    assets: list[Asset] = field(default_factory=list)
    imageid: str | None = None
    ignored: list[str] = field(default_factory=list)  # JSON paths of keys labcoat did not use
    notes: list[str] = field(default_factory=list)  # how unusual keys were taken


class ScenarioError(ValueError):
    """index.json cannot be read at all."""


MAX_INT_DIGITS = 100  # a JSON number longer than this is not a scenario's (Python refuses over 4300 digits)


class _LongNumber(Exception):
    def __init__(self, digits: int) -> None:
        self.digits = digits


def _bounded_int(text: str) -> int:
    if len(text) > MAX_INT_DIGITS:
        raise _LongNumber(len(text))
    return int(text)


def load_index(root: Path) -> dict[str, Any]:
    """index.json as a dict; ScenarioError (naming the file) for anything that is not a scenario's index.

    Untrusted: read bounded (a FIFO, a device or a growing file cannot stall or flood us), numbers
    bounded before conversion, nesting bounded by the recursion limit, never a traceback.
    """
    path = Path(root) / INDEX
    if not os.path.lexists(path):
        raise ScenarioError(f"{path} does not exist: a Killercoda scenario is a folder with index.json")
    if not inside(root, path):
        raise ScenarioError(f"{path} is a symlink out of the scenario folder (or a symlink loop): not read")
    try:
        raw = read_bytes_bounded(path, MAX_INDEX_BYTES)
    except FileProblem as exc:
        if "too large" in exc.message:
            raise ScenarioError(f"{path} is larger than {MAX_INDEX_BYTES >> 20} MiB: not a scenario's index") from None
        raise ScenarioError(f"{path} {exc.message}") from None
    try:
        data = json.loads(raw.decode("utf-8"), parse_int=_bounded_int)
    except _LongNumber as exc:
        raise ScenarioError(f"{path} holds a number of {exc.digits} digits (at most {MAX_INT_DIGITS} are read): "
                            "not a scenario's index") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError; so are Python's own limits
        raise ScenarioError(f"{path} is not valid JSON: {exc}") from None
    except (RecursionError, MemoryError):
        raise ScenarioError(f"{path} is nested too deeply to be a scenario's index") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{path} must hold a JSON object, not {type(data).__name__}")
    return data


def _page(obj: Any, where: str, allowed: set[str], scenario: Scenario) -> Page | None:
    if obj is None:
        return None
    if not isinstance(obj, dict):
        scenario.ignored.append(f"details.{where} (not an object)")
        return None
    page = Page(where=where)
    for key, value in obj.items():
        target = key
        if key in KATACODA_ALIASES and KATACODA_ALIASES[key] in allowed and KATACODA_ALIASES[key] not in obj:
            target = KATACODA_ALIASES[key]
            scenario.notes.append(f"details.{where}.{key}: Katacoda's name for `{target}`, used as such")
        if target not in allowed:
            scenario.ignored.append(f"details.{where}.{key}")
            continue
        if not isinstance(value, str):
            scenario.ignored.append(f"details.{where}.{key} (not a string)")
            continue
        setattr(page, target, value)
    return page


def read_scenario(root: Path) -> Scenario:
    """Parse a scenario folder leniently: unknown keys are listed in `ignored`, never an error."""
    root = Path(root)
    data = load_index(root)
    sc = Scenario(root=root, data=data)
    for key in data:
        if key not in TOP_KEYS:
            sc.ignored.append(key)
    sc.title = str(data.get("title") or root.name)
    sc.description = str(data.get("description") or "")
    backend = data.get("backend")
    if isinstance(backend, dict):
        sc.imageid = str(backend.get("imageid")) if backend.get("imageid") is not None else None
        sc.ignored += [f"backend.{k}" for k in backend if k != "imageid"]
    if "interface" in data:
        sc.ignored.append("interface (terminal layout: labcoat has `lab shell`)")
    details = data.get("details") or {}
    if not isinstance(details, dict):
        sc.ignored.append("details (not an object)")
        details = {}
    for key in details:
        if key not in DETAILS_KEYS:
            sc.ignored.append(f"details.{key}")
    sc.intro = _page(details.get("intro"), "intro", PAGE_KEYS, sc)
    sc.finish = _page(details.get("finish"), "finish", PAGE_KEYS, sc)
    steps = details.get("steps") or []
    if not isinstance(steps, list):
        sc.ignored.append("details.steps (not a list)")
        steps = []
    if len(steps) > MAX_STEPS:
        raise ScenarioError(f"{root / INDEX}: {len(steps)} steps; at most {MAX_STEPS} are read")
    for i, step in enumerate(steps):
        page = _page(step, f"steps[{i}]", STEP_KEYS, sc)
        if page is not None:
            sc.steps.append(page)
    assets = details.get("assets") or {}
    if isinstance(assets, dict):
        for host, entries in assets.items():
            for j, entry in enumerate(entries if isinstance(entries, list) else []):
                if not isinstance(entry, dict) or not isinstance(entry.get("file"), str) \
                        or not isinstance(entry.get("target"), str):
                    sc.ignored.append(f"details.assets.{host}[{j}] (needs `file` and `target`)")
                    continue
                sc.ignored += [f"details.assets.{host}[{j}].{k}" for k in entry if k not in ASSET_KEYS]
                chmod = entry.get("chmod")
                sc.assets.append(Asset(host, entry["file"], entry["target"], str(chmod) if chmod else None))
    elif assets:
        sc.ignored.append("details.assets (not an object)")
    return sc


# ----------------------------------------------------------------------------- paths and assets


def _safe_relative(rel: str) -> bool:
    p = PurePosixPath(rel)
    return bool(rel) and not p.is_absolute() and ".." not in p.parts


def inside(root: Path, path: Path) -> bool:
    """`path`, symlinks resolved, is within `root` (symlinks resolved too)."""
    try:
        return Path(path).resolve().is_relative_to(Path(root).resolve())
    except (OSError, RuntimeError):  # a symlink loop
        return False


def scenario_file(root: Path, rel: str) -> Path | None:
    """The file `rel` names inside the scenario, or None when it is absent or points outside
    (a `..`, an absolute path, or a symlink whose target is outside the folder)."""
    if not _safe_relative(rel):
        return None
    path = Path(root) / rel
    return path if path.is_file() and inside(root, path) else None


def why_missing(root: Path, rel: str) -> str:
    """Why scenario_file(root, rel) found nothing, in words (for the import report)."""
    path = Path(root) / rel
    if not _safe_relative(rel) or (os.path.lexists(path) and not inside(root, path)):
        return "points outside the scenario"
    if not os.path.lexists(path):
        return "does not exist in the scenario"
    try:
        mode = path.stat().st_mode
    except OSError:
        return "is a symlink to nothing (or a loop)"
    return f"is {file_kind(mode)}, not a regular file"


def read_text(root: Path, rel: str, limit: int = MAX_TEXT_BYTES) -> str | None:
    """The text of scenario file `rel` (invalid UTF-8 replaced), None when absent or outside;
    ScenarioError when it is larger than `limit`."""
    path = scenario_file(root, rel)
    if path is None:
        return None
    try:
        return read_bytes_bounded(path, limit).decode("utf-8", errors="replace")
    except FileProblem as exc:
        if "too large" in exc.message:
            raise ScenarioError(f"{rel} is larger than {limit >> 10} KiB: not a scenario's text or script") from None
        raise ScenarioError(f"{rel} {exc.message}") from None


def match_assets(root: Path, pattern: str) -> list[Path]:
    """Files under assets/ that an asset `file` pattern matches (`*` within a folder, `**` across);
    symlinks pointing outside the scenario are never matched."""
    base = Path(root) / ASSETS_DIR
    if not base.is_dir() or not _safe_relative(pattern) or not inside(root, base):
        return []
    if pattern == "**" or pattern.endswith("/**"):
        pattern += "/*"  # pathlib's `**` alone matches folders only
    try:
        return sorted(p for p in base.glob(pattern) if p.is_file() and inside(root, p))
    except ValueError:  # a pattern pathlib refuses (e.g. `a**b`)
        return []


def copy_scenario(src: Path, dest: Path) -> int:
    """Copy the scenario's regular files (symlinks only when they stay inside) to `dest`; returns bytes.

    Never follows a link out of the folder, skips .git, and refuses a folder beyond
    MAX_FILES files or MAX_TOTAL_BYTES bytes (ScenarioError).
    """
    import os
    import shutil

    src = Path(src)
    total = count = 0
    for folder, dirs, files in os.walk(src, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d not in (".git", "__pycache__") and not Path(folder, d).is_symlink())
        for name in sorted(files):
            path = Path(folder, name)
            if not path.is_file() or not inside(src, path):
                continue
            count += 1
            total += path.stat().st_size
            if count > MAX_FILES or total > MAX_TOTAL_BYTES:
                raise ScenarioError(f"{src} holds more than {MAX_FILES} files or {MAX_TOTAL_BYTES >> 20} MiB: "
                                    "not a scenario")
            target = Path(dest) / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            if os.access(path, os.X_OK):
                target.chmod(0o755)
    return total


def expand_target(target: str, home: str = "/root") -> str:
    """An asset target folder with `~` expanded (the learner is root on Killercoda's ubuntu)."""
    if target == "~" or target.startswith("~/"):
        target = home + target[1:]
    return target.rstrip("/") or "/"


class AssetCollision(ScenarioError):
    """Two asset files would land on one destination."""


def resolve_assets(root: Path, assets: list[Asset]) -> list[tuple[Path, str, str | None]]:
    """(source file, destination path on the VM, chmod) for every asset entry.

    A file matched by a pattern without `**` lands in the target folder under its own
    name; with `**` it keeps its folders below the pattern's fixed part (`app/**/*.conf`
    puts assets/app/db/x.conf at TARGET/db/x.conf), so equal names in different folders
    stay apart. Two files for one destination raise AssetCollision naming both.
    """
    out: list[tuple[Path, str, str | None]] = []
    seen: dict[str, Path] = {}
    base = Path(root) / ASSETS_DIR
    for asset in assets:
        head = asset.file.split("**", 1)[0] if "**" in asset.file else None
        prefix = head.rsplit("/", 1)[0] if head and "/" in head else ""
        for src in match_assets(root, asset.file):
            rel = PurePosixPath(src.relative_to(base).as_posix())
            keep = PurePosixPath(rel.name) if head is None else rel.relative_to(prefix) if prefix else rel
            dest = f"{expand_target(asset.target).rstrip('/')}/{keep.as_posix()}"
            if dest in seen and seen[dest] != src:
                raise AssetCollision(f"assets: {seen[dest].relative_to(root).as_posix()} and "
                                     f"{src.relative_to(root).as_posix()} both go to {dest}")
            if dest not in seen:
                seen[dest] = src
                out.append((src, dest, asset.chmod))
    return out


def asset_install_script(root: Path, index: dict[str, Any], where: str) -> str:
    """A shell script that does what Killercoda does with the assets before any script runs.

    `where` is the folder the scenario was copied to on the machine that runs the script
    (the stand-in VM of the tests). Used by the tests; Killercoda does this itself.
    """
    import shlex

    sc = Scenario(root=Path(root), data=index)
    assets = ((index.get("details") or {}).get("assets") or {})
    for host, entries in assets.items():
        for entry in entries:
            sc.assets.append(Asset(host, entry["file"], entry["target"], entry.get("chmod")))
    lines = ["set -e"]
    for src, dest, chmod in resolve_assets(root, sc.assets):
        rel = src.relative_to(root).as_posix()
        folder = dest.rpartition("/")[0] or "/"
        lines.append(f"mkdir -p {shlex.quote(folder)}")
        lines.append(f"cp {shlex.quote(where.rstrip('/') + '/' + rel)} {shlex.quote(dest)}")
        if chmod:
            lines.append(f"chmod {shlex.quote(chmod)} {shlex.quote(dest)}")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- validation


def validate_scenario(root: Path, *, strict: bool = True) -> list[str]:
    """Problems of a scenario folder, one sentence each; [] when it is valid.

    Checks: index.json is a JSON object with a title; `details` has a list of steps, each
    with a title and text; every file the intro, the steps and the finish name
    (text, background, foreground, verify, and a `solution` that is a path) exists inside
    the folder; every asset entry has `file` and `target` and its pattern matches at least
    one file under assets/. With `strict` (what an exporter must satisfy) it also requires
    `backend.imageid` and refuses keys Killercoda does not document.
    """
    root = Path(root)
    try:
        data = load_index(root)
    except ScenarioError as exc:
        return [str(exc)]
    problems: list[str] = []
    if not isinstance(data.get("title"), str) or not data["title"].strip():
        problems.append("index.json: `title` is missing (a non-empty string)")
    backend = data.get("backend")
    if strict and not (isinstance(backend, dict) and isinstance(backend.get("imageid"), str)):
        problems.append("index.json: `backend.imageid` is missing (e.g. \"ubuntu\")")
    if strict:
        problems += [f"index.json: unknown key `{k}`" for k in data if k not in TOP_KEYS]
    details = data.get("details")
    if not isinstance(details, dict):
        return problems + ["index.json: `details` is missing (an object with intro, steps, finish)"]
    steps = details.get("steps")
    if not isinstance(steps, list) or not steps:
        problems.append("index.json: `details.steps` is missing or empty")
        steps = []
    pages: list[tuple[str, Any, set[str]]] = [("intro", details.get("intro"), PAGE_KEYS),
                                              ("finish", details.get("finish"), PAGE_KEYS)]
    pages += [(f"steps[{i}]", s, STEP_KEYS) for i, s in enumerate(steps)]
    for where, page, allowed in pages:
        if page is None and where in ("intro", "finish"):
            continue
        if not isinstance(page, dict):
            problems.append(f"index.json: details.{where} must be an object")
            continue
        if where.startswith("steps") and not page.get("title"):
            problems.append(f"index.json: details.{where} has no `title`")
        if where.startswith("steps") and not page.get("text"):
            problems.append(f"index.json: details.{where} has no `text`")
        for key, value in page.items():
            if strict and key not in allowed:
                problems.append(f"index.json: details.{where}: unknown key `{key}`")
            if key == "title" or key not in allowed:
                continue
            if not isinstance(value, str):
                problems.append(f"index.json: details.{where}.{key} must be a string (a path)")
                continue
            if key == "solution" and "\n" in value:
                continue  # an inline script, not a path
            if not _safe_relative(value):
                problems.append(f"index.json: details.{where}.{key}: {value!r} must be a relative path inside "
                                "the scenario")
            elif not (root / value).is_file():
                problems.append(f"index.json: details.{where}.{key}: {value} does not exist")
    assets = details.get("assets", {})
    if not isinstance(assets, dict):
        problems.append("index.json: details.assets must be an object (host -> list of files)")
        assets = {}
    for host, entries in assets.items():
        if not isinstance(entries, list):
            problems.append(f"index.json: details.assets.{host} must be a list")
            continue
        for j, entry in enumerate(entries):
            where = f"details.assets.{host}[{j}]"
            if not isinstance(entry, dict) or not isinstance(entry.get("file"), str) \
                    or not isinstance(entry.get("target"), str):
                problems.append(f"index.json: {where} needs `file` and `target` (strings)")
                continue
            if not match_assets(root, entry["file"]):
                problems.append(f"index.json: {where}: no file under assets/ matches {entry['file']!r}")
            target = entry["target"]
            if not (target.startswith("/") or target.startswith("~")):
                problems.append(f"index.json: {where}: target {target!r} must be an absolute folder (or ~/...)")
            if strict:
                problems += [f"index.json: {where}: unknown key `{k}`" for k in entry if k not in ASSET_KEYS]
    return problems


def referenced_files(root: Path) -> list[Path]:
    """Every file index.json references (pages' files and matched assets), for size reports and tests."""
    data = load_index(root)
    details = data.get("details") or {}
    pages = [details.get("intro") or {}, details.get("finish") or {}, *(details.get("steps") or [])]
    files = [Path(root) / INDEX]
    for page in pages:
        for key in ("text", *SCRIPT_KEYS, "solution"):
            value = page.get(key)
            if isinstance(value, str) and "\n" not in value and (Path(root) / value).is_file():
                files.append(Path(root) / value)
    for entries in (details.get("assets") or {}).values():
        for entry in entries:
            files += match_assets(root, entry.get("file", ""))
    return list(dict.fromkeys(files))
