"""Modules stay small (issue #11): one over 500 lines says why at its top."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "labcoat"
LIMIT = 500
REASON = "Over 500 lines on purpose:"


def test_a_module_over_500_lines_says_why_in_its_docstring() -> None:
    unexplained = []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text()
        if text.count("\n") <= LIMIT:
            continue
        doc = ast.get_docstring(ast.parse(text)) or ""
        if REASON not in "\n".join(doc.splitlines()[:4]):
            unexplained.append(f"{path.relative_to(SRC)} ({text.count(chr(10))} lines)")
    assert not unexplained, f"split these, or say why at the top ('{REASON} ...'): {unexplained}"
