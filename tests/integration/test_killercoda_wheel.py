"""`lab export killercoda` from a wheel install: no source checkout anywhere in sight.

labcoat is built as a wheel, installed into a fresh venv (its dependencies come from this
test run's environment through a .pth line, labcoat itself only from the wheel), and that
venv's `lab` exports lab 5.3 from an unrelated folder. The labcoat wheel in the export is
the installed distribution packed again: it must hold the code and the course content and
install on its own. The dependency wheels come from PyPI once (one Python version), then
from the cache.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.docker  # the export `docker save`s the sandbox image (part 5 uses the VM's Docker)
def test_export_from_a_wheel_install(tmp_path: Path) -> None:
    if shutil.which("gcc") is None:
        # the export compiles the sandbox image's hog with `gcc -static` for the VM (scripts/setup.sh
        # installs gcc and libc6-dev): under CI / LAB_REQUIRE_DOCKER a missing gcc fails, as Docker does
        why = "the export compiles hog for the VM with gcc and libc6-dev"
        if os.environ.get("CI") or os.environ.get("LAB_REQUIRE_DOCKER"):
            pytest.fail(f"gcc is required here (CI / LAB_REQUIRE_DOCKER) but missing: {why}")
        pytest.skip(why)
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheels), str(ROOT)], check=True, capture_output=True, timeout=300)
    wheel = next(wheels.glob("labcoat-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               check=True, capture_output=True, text=True).stdout.strip())
    # the dependencies, from this environment (a .pth in a .pth-named folder is not processed, so the
    # editable checkout's own .pth is not either: labcoat comes from the wheel alone)
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("LABCOAT_CONTENT", "PYTHONPATH")}
    where = subprocess.run([str(python), "-c", "import labcoat; print(labcoat.__file__)"], cwd=elsewhere,
                           env=env, check=True, capture_output=True, text=True).stdout.strip()
    assert Path(where).is_relative_to(site), where  # not the checkout

    out = elsewhere / "kc"
    result = subprocess.run([str(venv / "bin" / "lab"), "export", "killercoda", "5.3", str(out), "--python",
                             f"{sys.version_info.major}.{sys.version_info.minor}", "--json"],
                            cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    from labcoat.content.catalog import Catalog

    assert data["steps"] == [p.id for p in Catalog.load().lab("5.3").parts]  # every part of the lab, in order
    [shipped] = [w for w in data["wheels"] if w.startswith("labcoat-")]
    names = zipfile.ZipFile(out / "assets" / shipped).namelist()
    assert "labcoat/killercoda/export.py" in names and "labcoat/_content/labs/5.3.yaml" in names
    assert not any(n.endswith(".pyc") for n in names)
    # wheels travel as assets, the rest of the export is small text
    assert data["sizes"]["scenario text"] < 200 * 1024, data["sizes"]
    assert not any(p.suffix in (".yaml", ".yml") for p in out.rglob("*") if p.is_file())

    # the repacked wheel installs on its own
    target = tmp_path / "again"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
                                "--target", str(target), str(out / "assets" / shipped)],
                               capture_output=True, text=True, timeout=300, check=False)
    assert installed.returncode == 0, installed.stderr
    assert (target / "labcoat" / "_content" / "checks" / "lab_5_3" / "test_part1.py").is_file()
