"""Tiny content trees for the content-layer and CLI tests.

`content_tree` builds one valid content root in tmp_path (a lab with one part, a
scenario, an image, a check file, instructions, a solution and a decoy); a test then
breaks exactly what it is about with `tree.write` / `tree.edit` / `tree.remove`.
Kept as a fixture (not an importable module) so it works whatever pytest's import mode.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

LAB_YAML = """\
schema_version: 1
id: "1.1"
title: Tiny lab
intro: 1.1/intro.md
sandbox:
  image: tiny
  memory: 64m
parts:
  - id: part1
    title: First part
    instructions: 1.1/part1.md
    points: 10
    prepare: [fill]
    checks: test_tiny_part1.py
    check_points:
      test_one: 4
    solution: 1.1/part1-solution.sh
    decoys:
      - name: wrong
        script: 1.1/part1-decoy.sh
        why: a plausible mistake
"""

SCENARIO_YAML = """\
schema_version: 1
id: fill
title: Fill the page cache
sandbox:
  image: tiny
  memory: 64m
steps:
  - run:
      cmd: echo hello
  - fill_cache:
      path: /tmp/big
      size: 8m
"""

IMAGE_YAML = """\
schema_version: 1
id: tiny
description: A tiny test image.
packages: [procps]
"""

CHECKS_PY = '''\
def test_one(host):
    assert host.run("true").rc == 0


def test_two(host):
    assert host.run("true").rc == 0
'''


@dataclass
class ContentTree:
    """A content root on disk, with helpers to break it one piece at a time."""

    root: Path

    def path(self, rel: str) -> Path:
        return self.root / rel

    def write(self, rel: str, text: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text) if text.startswith("\n") else text, encoding="utf-8")
        return path

    def read(self, rel: str) -> str:
        return (self.root / rel).read_text(encoding="utf-8")

    def edit(self, rel: str, old: str, new: str) -> Path:
        """Replace `old` (which must occur exactly once) by `new` in one file."""
        text = self.read(rel)
        assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {rel}"
        return self.write(rel, text.replace(old, new))

    def remove(self, rel: str) -> None:
        (self.root / rel).unlink()


def build_tree(root: Path) -> ContentTree:
    """One valid content root: lab 1.1 (part1), scenario `fill`, image `tiny`."""
    tree = ContentTree(root)
    for folder in ("labs", "checks", "quizzes", "scenarios", "images"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    tree.write("labs/1.1.yaml", LAB_YAML)
    tree.write("labs/1.1/intro.md", "# Tiny lab\n\nWelcome.\n")
    tree.write("labs/1.1/part1.md", "# Part 1\n\nDo the thing.\n")
    tree.write("labs/1.1/part1-solution.sh", "#!/bin/sh\ntrue\n")
    tree.write("labs/1.1/part1-decoy.sh", "#!/bin/sh\nfalse\n")
    tree.write("checks/test_tiny_part1.py", CHECKS_PY)
    tree.write("scenarios/fill.yaml", SCENARIO_YAML)
    tree.write("images/tiny/image.yaml", IMAGE_YAML)
    tree.write("images/tiny/Dockerfile", "FROM debian:bookworm-slim\n")
    return tree


@pytest.fixture
def content_tree(tmp_path: Path) -> ContentTree:
    """A valid content root under tmp_path/content."""
    return build_tree(tmp_path / "content")


# ----------------------------------------------------------------------------- the repository's own content


@pytest.fixture(scope="module")
def catalog() -> Any:
    """The repository's content (a test file may define its own `catalog`)."""
    from labcoat.content.catalog import Catalog

    return Catalog.load(Path(__file__).resolve().parents[2])


@pytest.fixture
def lab(catalog: Any) -> Any:
    """A lab with at least one part that has a sandbox of its own (whichever the content has)."""
    return next(lab for lab in catalog.labs.values() if any(p.sandbox for p in lab.parts))


@pytest.fixture
def prepared(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Preparation replaced by a recorder: (machine id, part id) per prepare_part call."""
    calls: list[tuple[str, str]] = []
    monkeypatch.setattr("labcoat.runner.steps.prepare_part",
                        lambda catalog, sandbox, part: calls.append((sandbox.machine.id, part.id)))
    return calls


@pytest.fixture
def watcher_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk watcher on: tests/conftest.py turns it off for every test but those that test it."""
    monkeypatch.delenv("LABCOAT_DISKWATCH", raising=False)
