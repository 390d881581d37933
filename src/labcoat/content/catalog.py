"""Discover and cross-check all content under one content root.

A content root holds `labs/`, `checks/`, `quizzes/`, `scenarios/` and `images/`. This is
the only module that knows that layout; everything else asks the catalog by id.

Where the root comes from (first found wins): the `--content` option, the
`LABCOAT_CONTENT` environment variable, the source checkout this package runs from,
and the copy shipped inside the wheel (`labcoat/_content`).
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labcoat.content.files import (
    MAX_FILE,
    MAX_MARKDOWN,
    FileProblem,
    confine,
    inside,
    problem_error,
    read_text_bounded,
)
from labcoat.content.loader import Loc, YamlDoc, load_model_with_doc
from labcoat.content.models import Image, Lab, Part, Scenario
from labcoat.errors import ContentError, ContentErrors, LabError, UsageProblem

CONTENT_DIRS = ("labs", "checks", "quizzes", "scenarios", "images")
_CHUNK = re.compile(r"[0-9]+|[^0-9]+")


def natural_key(text: str) -> tuple[tuple[int, int, str], ...]:
    """Sort key that orders 5.3 < 5.10 < intro and never compares a number with text."""
    return tuple((0, int(c), "") if c.isascii() and c.isdigit() else (1, 0, c) for c in _CHUNK.findall(text))


def _quoted(names: set[str]) -> str:
    return ", ".join(repr(n) for n in sorted(names))


def _known(ids: Any) -> str:
    return ", ".join(sorted(ids, key=natural_key)) or "none"


def default_content_root() -> Path:
    """The content root used when neither --content nor LABCOAT_CONTENT names one."""
    env = os.environ.get("LABCOAT_CONTENT")
    if env:
        return Path(env).expanduser()
    here = Path(__file__).resolve().parent.parent  # src/labcoat
    checkout = here.parent.parent  # repository root when running from src/
    if (checkout / "labs").is_dir() and (checkout / "pyproject.toml").is_file():
        return checkout
    return here / "_content"


def _fingerprint(root: Path) -> str:
    """What the catalog depends on: every content file's path, size and mtime, and the engine's code.

    The engine's part is the version and the size and mtime of the modules that build the models:
    an editable install or an upgrade that keeps the version (a new field on a model) must never be
    served a pickle of the old models.
    """
    import hashlib

    from labcoat import __version__

    digest = hashlib.sha256(f"{__version__}\0{root}".encode())
    engine = Path(__file__).resolve().parent
    for module in sorted(engine.glob("*.py")):
        st = module.stat()
        digest.update(f"{module.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    for kind in CONTENT_DIRS:
        for dirpath, dirnames, filenames in os.walk(root / kind):
            dirnames.sort()
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                try:
                    st = os.stat(path)
                except OSError:  # a dangling or looping symlink: the link itself (loading reports it)
                    st = os.lstat(path)
                digest.update(f"{path}\0{st.st_mode}\0{st.st_size}\0{st.st_mtime_ns}\n".encode(errors="replace"))
    return digest.hexdigest()


def _cache_file(root: Path) -> Path:
    import hashlib

    from labcoat.paths import cache_dir

    return cache_dir() / f"catalog-{hashlib.sha256(str(root).encode()).hexdigest()[:16]}.pickle"


def _read_cache(root: Path, fingerprint: str) -> Catalog | None:
    import pickle

    try:
        with _cache_file(root).open("rb") as fh:
            stored, catalog = pickle.load(fh)
    except Exception:  # noqa: BLE001 - a missing, old or damaged cache is simply rebuilt
        return None
    return catalog if stored == fingerprint and isinstance(catalog, Catalog) else None


def _write_cache(catalog: Catalog, fingerprint: str) -> None:
    """Best effort: an unwritable cache folder only means the next load validates again."""
    import pickle

    try:
        path = _cache_file(catalog.root)
    except (OSError, RuntimeError, LabError):  # no home folder, a read-only or unwritable cache folder
        return
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        tmp.write_bytes(pickle.dumps((fingerprint, catalog), protocol=pickle.HIGHEST_PROTOCOL))
        tmp.replace(path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


@dataclass
class Catalog:
    """Every lab, scenario, image and quiz under `root`, validated and cross-checked."""

    root: Path
    labs: dict[str, Lab] = field(default_factory=dict)
    scenarios: dict[str, Scenario] = field(default_factory=dict)
    images: dict[str, Image] = field(default_factory=dict)
    quizzes: dict[str, Any] = field(default_factory=dict)
    files: dict[tuple[str, str], Path] = field(default_factory=dict)  # (kind, id) -> YAML file
    errors: list[ContentError] = field(default_factory=list)
    # (kind, id) -> the parsed file, for file:line of cross-reference errors; dropped once checked
    docs: dict[tuple[str, str], YamlDoc] = field(default_factory=dict, repr=False, compare=False)

    # ------------------------------------------------------------------ loading

    @classmethod
    def load(cls, root: Path | None = None, *, strict: bool = True, cache: bool = True) -> Catalog:
        """Load everything; with `strict`, raise ContentErrors listing every problem.

        A valid catalog is cached (pickled, keyed by every content file's path, size and
        mtime): `lab check` runs dozens of times and must not re-validate unchanged YAML.
        """
        root = Path(os.path.realpath(root or default_content_root()))  # a symlink loop stays a path: not a folder
        if not root.is_dir():
            raise UsageProblem(
                f"content folder {root} does not exist",
                hint="pass --content DIR or set LABCOAT_CONTENT to a folder holding labs/, checks/, ...",
            )
        fingerprint = _fingerprint(root) if cache else ""
        if cache:
            cached = _read_cache(root, fingerprint)
            if cached is not None:
                return cached
        cat = cls._load_uncached(root)
        if strict and cat.errors:
            raise ContentErrors(cat.errors)
        if cache and not cat.errors:
            _write_cache(cat, fingerprint)
        return cat

    @classmethod
    def _load_uncached(cls, root: Path) -> Catalog:
        cat = cls(root=root)
        cat._load_kind("images", "*/image.yaml", Image, cat.images)
        cat._load_kind("scenarios", "*.yaml", Scenario, cat.scenarios)
        cat._load_quizzes()
        cat._load_kind("labs", "*.yaml", Lab, cat.labs)
        cat._cross_check()
        cat.docs = {}  # only needed for the messages above; not cached
        return cat

    def display(self, path: Path) -> str:
        """A path as shown in messages: relative to the content root when inside it."""
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def _load_kind(self, kind: str, pattern: str, model: type, into: dict[str, Any]) -> None:
        for path in sorted((self.root / kind).glob(pattern)):
            shown = self.display(path)
            if not inside(path, self.root):  # e.g. labs/x.yaml a symlink to /etc/passwd
                self.errors.append(ContentError(
                    "is a symlink to a file outside the content folder", path=shown,
                    hint="content files must lie inside the content folder; copy the file in instead"))
                continue
            obj, doc = load_model_with_doc(model, path, self.errors, shown)
            if obj is None or doc is None:
                continue
            self._register(kind, obj.id, obj, path, into, doc)

    def _register(self, kind: str, obj_id: str, obj: Any, path: Path, into: dict[str, Any], doc: YamlDoc) -> None:
        if obj_id in into:
            first = self.display(self.files[(kind, obj_id)])
            line, col = doc.where(("id",))
            self.errors.append(
                ContentError(
                    f"id {obj_id!r} is already used by {first}",
                    path=self.display(path), line=line, col=col,
                    hint="ids must be unique within their kind; rename one of them",
                )
            )
            return
        into[obj_id] = obj
        self.files[(kind, obj_id)] = path
        self.docs[(kind, obj_id)] = doc

    def _load_quizzes(self) -> None:
        from labcoat.content.quiz import Quiz  # the quiz schema lives beside the quiz engine's needs

        self._load_kind("quizzes", "*.yaml", Quiz, self.quizzes)

    # ------------------------------------------------------------------ cross references

    def _err(self, kind: str, obj_id: str, message: str, hint: str | None = None, loc: Loc = (),
             key: bool = False) -> None:
        """An error in (kind, obj_id)'s file, at the line of `loc` (with `key`, of the key itself)."""
        doc = self.docs.get((kind, obj_id))
        line, col = doc.where(loc) if doc is not None and loc else (None, None)
        if key and doc is not None and loc in doc.key_marks:
            line, col = doc.key_marks[loc]
        self.errors.append(ContentError(message, path=self.display(self.files[(kind, obj_id)]), line=line,
                                        col=col, hint=hint))

    def _file(self, kind: str, obj_id: str, what: str, base: Path, rel: str, loc: Loc, *,
              limit: int = MAX_FILE, missing: str = "does not exist next to the lab file",
              text: bool = False, prefix: str = "") -> str | None:
        """Check one file a content file names: inside the content root, regular, bounded; its text if asked.

        Every problem is an error naming the key (`what`) at its line; returns None then.
        """
        try:
            path = confine(self.root, base, rel)
            body = read_text_bounded(path, limit) if text else None
            if not text and path.stat().st_size > limit:
                raise FileProblem(f"is too large (more than {limit} bytes)", hint="make it smaller")
        except FileProblem as exc:
            if exc.message.startswith("does not exist"):
                exc = FileProblem(missing, exc.hint)
            doc = self.docs.get((kind, obj_id))
            line, col = doc.where(loc) if doc is not None else (None, None)
            self.errors.append(problem_error(exc, f"{what}: {prefix}{rel}", path=self.display(self.files[(kind, obj_id)]),
                                             line=line, col=col))
            return None
        except OSError as exc:  # the file changed meanwhile
            self._err(kind, obj_id, f"{what}: {rel} cannot be read: {exc.strerror or exc}", loc=loc)
            return None
        return body if body is not None else ""

    def _cross_check(self) -> None:
        for image_id, image in self.images.items():
            base = self.files[("images", image_id)].parent
            for i, spec in enumerate(image.compile):
                self._file("images", image_id, "compile.src", base, spec.src, ("compile", i, "src"),
                           missing=f"does not exist in {base.name}/")
            for i, spec in enumerate(image.install):
                self._file("images", image_id, "install.src", base, spec.src, ("install", i, "src"),
                           missing=f"does not exist in {base.name}/")
            if image.dockerfile:
                self._file("images", image_id, "dockerfile", base, image.dockerfile, ("dockerfile",),
                           missing="does not exist")
        for sc_id, scenario in self.scenarios.items():
            if scenario.sandbox and scenario.sandbox.image not in self.images:
                self._err("scenarios", sc_id, f"sandbox.image {scenario.sandbox.image!r} is not an image id",
                          hint=f"known images: {_known(self.images)}", loc=("sandbox", "image"))
        for lab_id, lab in self.labs.items():
            self._check_lab(lab_id, lab)

    def _check_lab(self, lab_id: str, lab: Lab) -> None:
        base = self.files[("labs", lab_id)].parent
        if lab.sandbox.image not in self.images:
            self._err("labs", lab_id, f"sandbox.image {lab.sandbox.image!r} is not an image id",
                      hint=f"known images: {_known(self.images)}", loc=("sandbox", "image"))
        if lab.quiz and lab.quiz not in self.quizzes:
            self._err("labs", lab_id, f"quiz {lab.quiz!r} is not a quiz id",
                      hint=f"known quizzes: {_known(self.quizzes)}", loc=("quiz",))
        # (what, path, loc, Markdown?)
        files: list[tuple[str, str, Loc, bool]] = [("intro", lab.intro, ("intro",), True)]
        for i, part in enumerate(lab.parts):
            at: Loc = ("parts", i)
            if part.sandbox and part.sandbox.image not in self.images:
                self._err("labs", lab_id, f"{part.id}.sandbox.image {part.sandbox.image!r} is not an image id",
                          hint=f"known images: {_known(self.images)}", loc=at + ("sandbox", "image"))
            files += [(f"{part.id}.instructions", part.instructions, at + ("instructions",), True),
                      (f"{part.id}.solution", part.solution, at + ("solution",), False)]
            files += [(f"{part.id}.decoys.{d.name}", d.script, at + ("decoys", j, "script"), False)
                      for j, d in enumerate(part.decoys)]
            scenario_refs: list[tuple[str, str, Loc]] = [
                ("prepare", sc, at + ("prepare", k)) for k, sc in enumerate(part.prepare)]
            scenario_refs += [("provoke", part.provoke, at + ("provoke",))] if part.provoke else []
            for where, sc, loc in scenario_refs:
                if sc not in self.scenarios:
                    self._err("labs", lab_id, f"{part.id}.{where}: {sc!r} is not a scenario id",
                              hint=f"known scenarios: {_known(self.scenarios)}", loc=loc)
                elif where == "prepare":
                    self._check_prepare(lab_id, part.id, sc, loc)
            source = self._file("labs", lab_id, f"{part.id}.checks", self.root / "checks", part.checks,
                                at + ("checks",), missing="does not exist", text=True, prefix="checks/")
            if source is not None and part.check_points:
                self._check_points(lab_id, part, i, source)
        for what, rel, loc, is_markdown in files:
            self._file("labs", lab_id, what, base, rel, loc, limit=MAX_MARKDOWN if is_markdown else MAX_FILE,
                       text=is_markdown)
        self._check_process_names(lab_id, lab)

    def _check_prepare(self, lab_id: str, part_id: str, sc: str, loc: Loc) -> None:
        """A part's prepare runs steps without a scenario run: no observing step (sample, expect...)."""
        for n, step in enumerate(self.scenarios[sc].steps):
            if not step.observing:
                continue
            doc = self.docs.get(("scenarios", sc))
            line = doc.where(("steps", n, step.kind))[0] if doc is not None else None
            at = f"{self.display(self.files[('scenarios', sc)])}{f':{line}' if line else ''}"
            self._err("labs", lab_id, f"{part_id}.prepare: scenario {sc!r} has an observing step `{step.kind}` "
                      f"(steps[{n}], {at}); preparing a part only acts, it observes nothing",
                      hint=f"list {sc!r} under `provoke` instead, or move its observing steps (sample, "
                      "wait_for, expect, mark, procs, time_read...) to the part's provoke scenario", loc=loc)
            return

    def _check_process_names(self, lab_id: str, lab: Lab) -> None:
        """Parts may share one host (the local backend runs every part on it; parts without a sandbox of
        their own share the lab's): a process name one part starts must not be started, nor named in a
        command (the `pkill -x` that prepares a part again), by another part's scenarios."""
        def scenarios(part: Part) -> set[str]:
            ids = [*part.prepare, *([part.provoke] if part.provoke else [])]
            return {sc for sc in ids if sc in self.scenarios}

        def names(ids: set[str]) -> set[str]:
            return set().union(*(self.scenarios[sc].process_names() for sc in ids))

        def named_in(ids: set[str], candidates: set[str]) -> set[str]:
            text = "\n".join(self.scenarios[sc].commands() for sc in sorted(ids))
            return {n for n in candidates if re.search(rf"(?<![\w.-]){re.escape(n)}(?![\w.-])", text)}

        why = ("where parts share a host (the local backend; parts without a sandbox of their own), one "
               "part's `pkill -x` or hog log would hit the other's")
        for i, first in enumerate(lab.parts):
            for j, second in enumerate(lab.parts[i + 1:], start=i + 1):
                shared = scenarios(first) & scenarios(second)
                mine, theirs = scenarios(first) - shared, scenarios(second) - shared
                clash = names(mine) & names(theirs)
                problems = [f"{first.id} and {second.id} may both start a process named {_quoted(clash)}"] if clash else []
                for owner, ids, other, other_ids in ((first, mine, second, theirs), (second, theirs, first, mine)):
                    named = named_in(other_ids, names(ids)) - clash
                    if named:
                        problems.append(f"a command of {other.id} names {_quoted(named)}, which {owner.id} starts")
                for problem in problems:
                    self._err("labs", lab_id, f"{problem}: {why}",
                              hint="draw each part's process names from a list no other part uses",
                              loc=("parts", j, "prepare"))

    def _check_points(self, lab_id: str, part: Part, index: int, source: str) -> None:
        for name in part.check_points:
            if f"def {name}(" not in source:
                self._err("labs", lab_id, f"{part.id}.check_points: no check function {name!r} in {part.checks}",
                          loc=("parts", index, "check_points", name), key=True)
        if sum(part.check_points.values()) > part.points:
            self._err("labs", lab_id, f"{part.id}.check_points add up to more than the part's {part.points} points",
                      loc=("parts", index, "check_points"))

    # ------------------------------------------------------------------ lookups

    def lab(self, lab_id: str) -> Lab:
        """The lab with this id, or a usage error listing the ones there are."""
        if lab_id not in self.labs:
            known = _known(self.labs)
            raise UsageProblem(f"no lab {lab_id!r}", hint=f"labs here: {known} (see `lab list`)")
        return self.labs[lab_id]

    def scenario(self, scenario_id: str) -> Scenario:
        if scenario_id not in self.scenarios:
            known = _known(self.scenarios)
            raise UsageProblem(f"no scenario {scenario_id!r}", hint=f"scenarios here: {known} (see `lab scenarios`)")
        return self.scenarios[scenario_id]

    def image(self, image_id: str) -> Image:
        return self.images[image_id]

    def quiz(self, quiz_id: str) -> Any:
        if quiz_id not in self.quizzes:
            known = _known(self.quizzes)
            raise UsageProblem(f"no quiz {quiz_id!r}", hint=f"quizzes here: {known}")
        return self.quizzes[quiz_id]

    def lab_dir(self, lab_id: str) -> Path:
        """Folder the lab's relative paths are resolved against."""
        return self.files[("labs", lab_id)].parent

    def lab_file(self, lab_id: str, rel: str) -> Path:
        return self.lab_dir(lab_id) / rel

    def image_dir(self, image_id: str) -> Path:
        return self.files[("images", image_id)].parent

    def checks_file(self, part: Part) -> Path:
        return self.root / "checks" / part.checks
