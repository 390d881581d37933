"""`pip install .` (not editable) ships the course content: `lab` works from any directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_ships_content_and_runs_from_anywhere(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheels), str(ROOT)], check=True, capture_output=True, timeout=300)
    wheel = next(wheels.glob("labcoat-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in ("labcoat/_content/labs/5.3.yaml", "labcoat/_content/checks/lab_5_3/test_part1.py",
                     "labcoat/_content/quizzes/5.3.yaml", "labcoat/_content/images/sandbox/image.yaml",
                     "labcoat/_content/scenarios/lab53-part1.yaml", "labcoat/checking/checks.ini"):
        assert expected in names, expected
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "LABCOAT_CONTENT"}
    env["PYTHONPATH"] = str(target)  # ahead of the editable checkout in site-packages
    listing = subprocess.run([sys.executable, "-m", "labcoat", "list", "--json"], cwd=elsewhere, env=env,
                             capture_output=True, text=True, timeout=120, check=False)
    assert listing.returncode == 0, listing.stderr
    data = json.loads(listing.stdout)
    assert Path(data["content"]) == target / "labcoat" / "_content"
    assert [lab["id"] for lab in data["labs"]] == ["5.3"]
    valid = subprocess.run([sys.executable, "-m", "labcoat", "validate"], cwd=elsewhere, env=env,
                           capture_output=True, text=True, timeout=120, check=False)
    assert valid.returncode == 0, valid.stderr
