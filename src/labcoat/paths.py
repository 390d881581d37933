"""Where labcoat keeps its own files (never inside the content folder)."""

from __future__ import annotations

import os
from pathlib import Path


def state_dir() -> Path:
    """Progress, sandbox cache and quiz attempts: $LABCOAT_STATE, else $XDG_STATE_HOME/labcoat."""
    env = os.environ.get("LABCOAT_STATE")
    if env:
        path = Path(env).expanduser()
    else:
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        path = Path(base) / "labcoat"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    """Built root filesystems and other things that can be rebuilt: $XDG_CACHE_HOME/labcoat."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    path = Path(base) / "labcoat"
    path.mkdir(parents=True, exist_ok=True)
    return path
