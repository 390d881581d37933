"""Discover and cross-check all content under one content root.

A content root holds `labs/`, `checks/`, `quizzes/`, `scenarios/` and `images/`. This is
the only module that knows that layout; everything else asks the catalog by id.

Where the root comes from (first found wins): the `--content` option, the
`LABCOAT_CONTENT` environment variable, the source checkout this package runs from,
and the copy shipped inside the wheel (`labcoat/_content`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labcoat.content.loader import load_model_collecting
from labcoat.content.models import Image, Lab, Part, Scenario
from labcoat.errors import ContentError, ContentErrors, UsageProblem

CONTENT_DIRS = ("labs", "checks", "quizzes", "scenarios", "images")


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
    """What the catalog depends on: every content file's path, size and mtime, and our version."""
    import hashlib

    from labcoat import __version__

    digest = hashlib.sha256(f"{__version__}\0{root}".encode())
    for kind in CONTENT_DIRS:
        for dirpath, dirnames, filenames in os.walk(root / kind):
            dirnames.sort()
            for name in sorted(filenames):
                st = os.stat(os.path.join(dirpath, name))
                digest.update(f"{dirpath}/{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
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
    import pickle

    path = _cache_file(catalog.root)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        tmp.write_bytes(pickle.dumps((fingerprint, catalog), protocol=pickle.HIGHEST_PROTOCOL))
        tmp.replace(path)
    except OSError:
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

    # ------------------------------------------------------------------ loading

    @classmethod
    def load(cls, root: Path | None = None, *, strict: bool = True, cache: bool = True) -> Catalog:
        """Load everything; with `strict`, raise ContentErrors listing every problem.

        A valid catalog is cached (pickled, keyed by every content file's path, size and
        mtime): `lab check` runs dozens of times and must not re-validate unchanged YAML.
        """
        root = (root or default_content_root()).resolve()
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
        return cat

    def display(self, path: Path) -> str:
        """A path as shown in messages: relative to the content root when inside it."""
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def _load_kind(self, kind: str, pattern: str, model: type, into: dict[str, Any]) -> None:
        for path in sorted((self.root / kind).glob(pattern)):
            obj = load_model_collecting(model, path, self.errors, self.display(path))
            if obj is None:
                continue
            self._register(kind, obj.id, obj, path, into)

    def _register(self, kind: str, obj_id: str, obj: Any, path: Path, into: dict[str, Any]) -> None:
        if obj_id in into:
            first = self.display(self.files[(kind, obj_id)])
            self.errors.append(
                ContentError(
                    f"id {obj_id!r} is already used by {first}",
                    path=self.display(path),
                    hint="ids must be unique within their kind; rename one of them",
                )
            )
            return
        into[obj_id] = obj
        self.files[(kind, obj_id)] = path

    def _load_quizzes(self) -> None:
        from labcoat.content.quiz import Quiz  # the quiz schema lives beside the quiz engine's needs

        self._load_kind("quizzes", "*.yaml", Quiz, self.quizzes)

    # ------------------------------------------------------------------ cross references

    def _err(self, kind: str, obj_id: str, message: str, hint: str | None = None) -> None:
        self.errors.append(ContentError(message, path=self.display(self.files[(kind, obj_id)]), hint=hint))

    def _cross_check(self) -> None:
        for image_id, image in self.images.items():
            base = self.files[("images", image_id)].parent
            for spec in image.compile:
                if not (base / spec.src).is_file():
                    self._err("images", image_id, f"compile.src {spec.src!r} does not exist in {base.name}/")
            if image.dockerfile and not (base / image.dockerfile).is_file():
                self._err("images", image_id, f"dockerfile {image.dockerfile!r} does not exist")
        for sc_id, scenario in self.scenarios.items():
            if scenario.sandbox and scenario.sandbox.image not in self.images:
                self._err("scenarios", sc_id, f"sandbox.image {scenario.sandbox.image!r} is not an image id",
                          hint=f"known images: {', '.join(sorted(self.images)) or 'none'}")
        for lab_id, lab in self.labs.items():
            self._check_lab(lab_id, lab)

    def _check_lab(self, lab_id: str, lab: Lab) -> None:
        base = self.files[("labs", lab_id)].parent
        if lab.sandbox.image not in self.images:
            self._err("labs", lab_id, f"sandbox.image {lab.sandbox.image!r} is not an image id",
                      hint=f"known images: {', '.join(sorted(self.images)) or 'none'}")
        if lab.quiz and lab.quiz not in self.quizzes:
            self._err("labs", lab_id, f"quiz {lab.quiz!r} is not a quiz id")
        files = [("intro", lab.intro)]
        for part in lab.parts:
            if part.sandbox and part.sandbox.image not in self.images:
                self._err("labs", lab_id, f"{part.id}.sandbox.image {part.sandbox.image!r} is not an image id",
                          hint=f"known images: {', '.join(sorted(self.images)) or 'none'}")
            files += [(f"{part.id}.instructions", part.instructions), (f"{part.id}.solution", part.solution)]
            files += [(f"{part.id}.decoys.{d.name}", d.script) for d in part.decoys]
            scenario_refs = [("prepare", sc) for sc in part.prepare]
            scenario_refs += [("provoke", part.provoke)] if part.provoke else []
            for where, sc in scenario_refs:
                if sc not in self.scenarios:
                    self._err("labs", lab_id, f"{part.id}.{where}: {sc!r} is not a scenario id",
                              hint=f"known scenarios: {', '.join(sorted(self.scenarios)) or 'none'}")
            if not (self.root / "checks" / part.checks).is_file():
                self._err("labs", lab_id, f"{part.id}.checks: checks/{part.checks} does not exist")
            elif part.check_points:
                self._check_points(lab_id, part)
        for what, rel in files:
            if not (base / rel).is_file():
                self._err("labs", lab_id, f"{what}: {rel} does not exist next to the lab file")

    def _check_points(self, lab_id: str, part: Part) -> None:
        source = (self.root / "checks" / part.checks).read_text(encoding="utf-8")
        for name in part.check_points:
            if f"def {name}(" not in source:
                self._err("labs", lab_id, f"{part.id}.check_points: no check function {name!r} in {part.checks}")
        if sum(part.check_points.values()) > part.points:
            self._err("labs", lab_id, f"{part.id}.check_points add up to more than the part's {part.points} points")

    # ------------------------------------------------------------------ lookups

    def lab(self, lab_id: str) -> Lab:
        """The lab with this id, or a usage error listing the ones there are."""
        if lab_id not in self.labs:
            known = ", ".join(sorted(self.labs)) or "none"
            raise UsageProblem(f"no lab {lab_id!r}", hint=f"labs here: {known} (see `lab list`)")
        return self.labs[lab_id]

    def scenario(self, scenario_id: str) -> Scenario:
        if scenario_id not in self.scenarios:
            known = ", ".join(sorted(self.scenarios)) or "none"
            raise UsageProblem(f"no scenario {scenario_id!r}", hint=f"scenarios here: {known} (see `lab scenarios`)")
        return self.scenarios[scenario_id]

    def image(self, image_id: str) -> Image:
        return self.images[image_id]

    def quiz(self, quiz_id: str) -> Any:
        if quiz_id not in self.quizzes:
            known = ", ".join(sorted(self.quizzes)) or "none"
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
