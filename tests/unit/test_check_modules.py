"""Check files of two content folders in one process (labcoat.checking.run.forget_other_checks)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from labcoat.checking import run


def _folder(root: Path, value: str) -> Path:
    checks = root / "checks"
    (checks / "lab_x").mkdir(parents=True)
    (checks / "lab_x" / "labx_helper_for_test.py").write_text(f"VALUE = {value!r}\n")
    return checks


@pytest.fixture
def clean_slate(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(run, "_checks_root", [])
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield
    sys.modules.pop("labx_helper_for_test", None)


def test_a_second_folder_gets_its_own_helper_not_the_firsts(tmp_path: Path, clean_slate: None) -> None:
    first, second = _folder(tmp_path / "a", "first"), _folder(tmp_path / "b", "second")
    run.forget_other_checks(first)
    sys.path.insert(0, str(first / "lab_x"))  # what pytest's prepend import mode does
    assert importlib.import_module("labx_helper_for_test").VALUE == "first"
    run.forget_other_checks(first)  # the same folder again: nothing is dropped (selftest runs it many times)
    assert "labx_helper_for_test" in sys.modules
    run.forget_other_checks(second)
    assert "labx_helper_for_test" not in sys.modules
    assert str(first / "lab_x") not in sys.path
    sys.path.insert(0, str(second / "lab_x"))
    assert importlib.import_module("labx_helper_for_test").VALUE == "second"
