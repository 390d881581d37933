"""What the scenario runner measured, kept on the host per sandbox, for checks to compare with.

A learner's sandbox cannot reach these files: they live in labcoat's state folder on
the host, keyed by the sandbox's id.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from labcoat.paths import state_dir


def _file(machine_id: str, name: str) -> Path:
    folder = state_dir() / "runs" / machine_id[:32]
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}.json"


def save_record(machine_id: str, name: str, data: dict[str, Any]) -> Path:
    path = _file(machine_id, name)
    path.write_text(json.dumps(data, default=str))
    return path


def load_record(machine_id: str, name: str) -> dict[str, Any] | None:
    path = _file(machine_id, name)
    if not path.exists():
        return None
    return json.loads(path.read_text())  # type: ignore[no-any-return]
