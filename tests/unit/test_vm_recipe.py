"""The proving ground's recipe logic (scripts/vm/recipe.py): lanes' kernel command lines and the
base image's cache key. No VM, no Docker: pure functions."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("vm_recipe", ROOT / "scripts" / "vm" / "recipe.py")
recipe = importlib.util.module_from_spec(_spec)
sys.modules["vm_recipe"] = recipe  # dataclasses look their module up
_spec.loader.exec_module(recipe)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for rel in (*recipe.IMAGE_INPUTS, recipe.PYPROJECT):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    return tmp_path


def test_key_is_stable_for_the_same_recipe(tree: Path) -> None:
    assert recipe.image_key(tree, "6.1.0-57-amd64") == recipe.image_key(tree, "6.1.0-57-amd64")
    assert len(recipe.image_key(tree, "6.1.0-57-amd64")) == 16


@pytest.mark.parametrize("rel", recipe.IMAGE_INPUTS)
def test_any_edited_input_changes_the_key(tree: Path, rel: str) -> None:
    before = recipe.image_key(tree, "6.1.0-57-amd64")
    with (tree / rel).open("a") as f:
        f.write("\n# edited\n")
    assert recipe.image_key(tree, "6.1.0-57-amd64") != before


def test_a_new_dependency_changes_the_key_but_lint_settings_do_not(tree: Path) -> None:
    before = recipe.image_key(tree, "k")
    py = tree / recipe.PYPROJECT
    py.write_text(py.read_text() + "\n[tool.ruff.lint.extra]\nselect = ['X']\n")
    assert recipe.image_key(tree, "k") == before
    py.write_text(py.read_text().replace('dependencies = [', 'dependencies = [\n  "psutil>=5",', 1))
    assert recipe.image_key(tree, "k") != before


def test_dependency_order_and_spacing_do_not_matter(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('[project]\ndependencies = ["b >= 2", "A>=1"]\n')
    (tmp_path / "b.toml").write_text('[project]\ndependencies = ["a>=1", "b>=2"]\n')
    assert recipe.dependencies(tmp_path / "a.toml") == recipe.dependencies(tmp_path / "b.toml") == ["a>=1", "b>=2"]


def test_another_kernel_is_another_image(tree: Path) -> None:
    assert recipe.image_key(tree, "6.1.0-57-amd64") != recipe.image_key(tree, "6.1.0-58-amd64")


def test_moving_bytes_between_inputs_changes_the_key(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("xy")
    (tmp_path / "b").write_text("z")
    one = recipe.image_key(tmp_path, "k", ("a", "b"), pyproject=None)
    (tmp_path / "a").write_text("x")
    (tmp_path / "b").write_text("yz")
    assert recipe.image_key(tmp_path, "k", ("a", "b"), pyproject=None) != one


def test_a_missing_input_is_an_error_not_a_silent_key(tree: Path) -> None:
    (tree / recipe.IMAGE_INPUTS[0]).unlink()
    with pytest.raises(FileNotFoundError):
        recipe.image_key(tree, "6.1.0-57-amd64")


def test_lanes_command_lines() -> None:
    cgroupfs = recipe.LANES["v2-cgroupfs"].cmdline()
    assert "init=/sbin/labcoat-vm-init" in cgroupfs and "labcoat.docker=1" in cgroupfs
    assert "swapaccount=1" in cgroupfs and "labcoat.swap=1G" in cgroupfs
    systemd = recipe.LANES["v2-systemd"].cmdline()
    assert "init=" not in systemd and "labcoat.docker" not in systemd and "swap" not in systemd
    local = recipe.LANES["v2-local"].cmdline()
    assert "init=/sbin/labcoat-vm-init" in local and "labcoat.docker" not in local
    for lane in recipe.LANES.values():
        assert f"labcoat.lane={lane.name}" in lane.cmdline().split()


def test_default_lanes_are_the_issues_three() -> None:
    assert recipe.DEFAULT_LANES == ("v2-cgroupfs", "v2-systemd", "v2-local")
    assert all(name in recipe.LANES for name in recipe.DEFAULT_LANES)


def test_lane_shell_is_quoted_for_eval() -> None:
    text = recipe.lane_shell("v2-cgroupfs")
    assert "LANE_SUMMARY='cgroup v2, Docker'\"'\"'s" in text
    assert recipe.main(["lane", "no-such-lane"]) == 2



def test_podman_lane_carries_the_images_but_starts_no_dockerd() -> None:
    lane = recipe.LANES["v2-podman"]
    assert lane.podman and not lane.docker and lane.images
    assert "init=/sbin/labcoat-vm-init" in lane.cmdline() and "labcoat.docker" not in lane.cmdline()
    assert "LANE_IMAGES=1" in recipe.lane_shell("v2-podman").splitlines()
    assert "LANE_IMAGES=0" in recipe.lane_shell("v2-local").splitlines()
    assert all(recipe.LANES[name].images for name in ("v2-cgroupfs", "v2-systemd", "v2-killercoda"))
    assert "v2-podman" not in recipe.DEFAULT_LANES


def _summary_module():
    spec = importlib.util.spec_from_file_location("vm_summary", ROOT / "scripts" / "vm" / "scenario_summary.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_swap_thrash_on_a_lane_without_swap_must_be_skipped_and_on_one_with_swap_must_swap(tmp_path: Path) -> None:
    """The v2-systemd lane has no swap: there swap-thrash passes the proving ground only as
    `skipped`; where swap exists it must have swapped both ways (the lane's proof)."""
    summary = _summary_module()
    skipped, ran = tmp_path / "skipped.json", tmp_path / "ran.json"
    skipped.write_text('{"status": "skipped", "samples": []}')
    ran.write_text('{"status": "passed", "psi_source": "sandbox", "samples": ['
                   '{"host_pswpout": 0, "host_pswpin": 0, "swap": 0, "psi_some_total": 0},'
                   '{"host_pswpout": 9, "host_pswpin": 5, "swap": 4096, "psi_some_total": 70}]}')
    assert summary.main(str(skipped), "swap-thrash", has_swap=False) == 0
    assert summary.main(str(ran), "swap-thrash", has_swap=False) == 1  # ran without swap? not what was asked
    assert summary.main(str(skipped), "swap-thrash", has_swap=True) == 1
    assert summary.main(str(ran), "swap-thrash", has_swap=True) == 0
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 100 kB\nSwapTotal:        0 kB\n")
    assert summary.host_has_swap(str(meminfo)) is False
    meminfo.write_text("SwapTotal:  1048572 kB\n")
    assert summary.host_has_swap(str(meminfo)) is True
