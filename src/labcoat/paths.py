"""Where labcoat keeps its own files (never inside the content folder)."""

from __future__ import annotations

import os
from pathlib import Path


def _home() -> Path:
    try:
        return Path.home()
    except (RuntimeError, KeyError) as exc:  # no HOME and no passwd entry
        from labcoat.errors import EnvironmentProblem

        raise EnvironmentProblem(f"cannot tell the home folder: {exc}",
                                 hint="set HOME, or LABCOAT_STATE / XDG_CACHE_HOME to a writable folder") from None


def _ensure(path: Path, env: str) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from labcoat.errors import EnvironmentProblem

        raise EnvironmentProblem(f"cannot create {path}: {exc.strerror or exc}",
                                 hint=f"make it writable, or set {env} to a writable folder") from None
    return path


def state_dir() -> Path:
    """Progress, sandbox cache and quiz attempts: $LABCOAT_STATE, else $XDG_STATE_HOME/labcoat."""
    env = os.environ.get("LABCOAT_STATE")
    if env:
        path = Path(env).expanduser()
    else:
        base = os.environ.get("XDG_STATE_HOME") or str(_home() / ".local" / "state")
        path = Path(base) / "labcoat"
    return _ensure(path, "LABCOAT_STATE")


def cache_dir() -> Path:
    """Built root filesystems and other things that can be rebuilt: $XDG_CACHE_HOME/labcoat.

    Raises EnvironmentProblem when it cannot be created; callers for whom the cache is
    optional (the content catalog) carry on without it.
    """
    base = os.environ.get("XDG_CACHE_HOME") or str(_home() / ".cache")
    return _ensure(Path(base) / "labcoat", "XDG_CACHE_HOME")
