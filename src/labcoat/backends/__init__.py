"""Backends by name. A dict, not entry points: this is one application, not an ecosystem."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from labcoat.errors import UsageProblem

if TYPE_CHECKING:
    from labcoat.backends.base import Backend

BACKENDS: dict[str, tuple[str, str]] = {
    "docker": ("labcoat.backends.docker", "DockerBackend"),
    "local": ("labcoat.backends.local", "LocalBackend"),
}


def get_backend(name: str) -> Backend:
    """An instance of the named backend; an unknown name lists the valid ones."""
    if name not in BACKENDS:
        raise UsageProblem(f"unknown backend {name!r}. Valid backends: {', '.join(BACKENDS)}.")
    module, cls = BACKENDS[name]
    return getattr(importlib.import_module(module), cls)()  # type: ignore[no-any-return]
