"""Which parts a learner has passed, and when; kept across `lab stop` / `lab start`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from labcoat.paths import state_dir


def _file(lab_id: str) -> Path:
    folder = state_dir() / "progress"
    folder.mkdir(exist_ok=True)
    return folder / f"{lab_id}.json"


def load(lab_id: str) -> dict[str, Any]:
    """{"parts": {part_id: {"passed": bool, "first_passed": ts|None, "last_checked": ts, "checks": n}}}."""
    path = _file(lab_id)
    if not path.exists():
        return {"parts": {}}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"parts": {}}  # a damaged progress file is not worth failing a check over
    if not isinstance(data, dict) or not isinstance(data.get("parts"), dict):
        return {"parts": {}}
    data["parts"] = {k: v for k, v in data["parts"].items() if isinstance(v, dict)}
    return data


def record(lab_id: str, part_id: str, passed: bool) -> dict[str, Any]:
    """Remember one `lab check` of a part; a part once passed stays passed."""
    data = load(lab_id)
    now = time.time()
    entry = data["parts"].setdefault(part_id, {"passed": False, "first_passed": None, "checks": 0})
    entry["checks"] = int(entry.get("checks", 0)) + 1
    entry["last_checked"] = now
    entry["last_result"] = passed
    if passed and not entry.get("passed"):
        entry["passed"] = True
        entry["first_passed"] = now
    tmp = _file(lab_id).with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(_file(lab_id))
    return data


def reset(lab_id: str, part_id: str | None = None) -> None:
    """Forget progress for one part or the whole lab."""
    if part_id is None:
        _file(lab_id).unlink(missing_ok=True)
        return
    data = load(lab_id)
    data["parts"].pop(part_id, None)
    _file(lab_id).write_text(json.dumps(data, indent=2))
