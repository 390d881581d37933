"""The project's two rules about content, enforced: the engine never names a lab, content never
imports engine internals; and every lab's instructions render."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from labcoat.content.catalog import Catalog

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = {"labcoat.testing"}  # the check-author API (docs/authoring.md)


def _code_lines(path: Path) -> list[tuple[int, str]]:
    """Lines of code, without comments and docstrings (examples there may name a lab)."""
    tree = ast.parse(path.read_text())
    doc_lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            doc_lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return [(i, line.split("#", 1)[0]) for i, line in enumerate(path.read_text().splitlines(), 1) if i not in doc_lines]


def test_the_engine_never_names_a_lab():
    catalog = Catalog.load(ROOT)
    names = {lab_id for lab_id in catalog.labs} | {s for s in catalog.scenarios}
    names |= {part.id for lab in catalog.labs.values() for part in lab.parts}
    pattern = re.compile("|".join(re.escape(f'"{n}"') + "|" + re.escape(f"'{n}'") for n in names))
    offenders = [f"{path.relative_to(ROOT)}:{i}: {line.strip()}"
                 for path in (ROOT / "src" / "labcoat").rglob("*.py")
                 for i, line in _code_lines(path) if pattern.search(line)]
    assert offenders == []


@pytest.mark.parametrize("path", sorted((ROOT / "checks").rglob("*.py")), ids=lambda p: p.name)
def test_checks_import_only_the_public_check_api(path):
    tree = ast.parse(path.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    private = {m for m in imported if m.startswith("labcoat") and m not in PUBLIC}
    assert private == set(), f"{path.name} imports engine internals: {private}"


def test_every_part_of_every_lab_renders(cli):
    catalog = Catalog.load(ROOT)
    for lab in catalog.labs.values():
        intro = cli("show", "intro", "--lab", lab.id)
        assert intro.exit_code == 0 and intro.stdout.strip(), intro
        for part in lab.parts:
            shown = cli("show", part.id, "--lab", lab.id)
            assert shown.exit_code == 0, shown
            # The heading of the Markdown file is what the learner sees first.
            heading = catalog.lab_file(lab.id, part.instructions).read_text().splitlines()[0].lstrip("# ")
            assert heading in shown.stdout
