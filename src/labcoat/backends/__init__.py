"""Backends by name. A dict, not entry points: this is one application, not an ecosystem.

This is the one place a backend is named: the CLI's `--backend` choices come from
`BACKENDS`, and no code outside this package asks which backend it has (a capability
of the `Backend` Protocol says what differs).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from labcoat.errors import UsageProblem

if TYPE_CHECKING:
    from labcoat.backends.base import Backend

# name -> (module, class, what it is, for --help)
BACKENDS: dict[str, tuple[str, str, str]] = {
    "docker": ("labcoat.backends.docker", "DockerBackend", "Docker containers"),
    "local": ("labcoat.backends.local", "LocalBackend", "this host, in a memory cgroup (Killercoda-style VMs)"),
    "podman": ("labcoat.backends.podman", "PodmanBackend", "Podman containers, through its Docker-compatible API"),
}
DEFAULT_BACKEND = "docker"


def backend_class(name: str) -> type[Backend]:
    """The class of the named backend (its capabilities, without connecting); an unknown name lists the valid ones."""
    if name not in BACKENDS:
        raise UsageProblem(f"unknown backend {name!r}. Valid backends: {', '.join(BACKENDS)}.")
    module, cls, _ = BACKENDS[name]
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]


def get_backend(name: str) -> Backend:
    """An instance of the named backend; an unknown name lists the valid ones."""
    return backend_class(name)()


def preload(name: str) -> None:
    """Import what the named backend needs to talk to its engine (for the warm server; an unknown name: nothing)."""
    if name in BACKENDS:
        backend_class(name).preload()


def describe() -> str:
    """The backends for --help: `docker` (Docker containers), ..."""
    return ", ".join(f"{name} ({what})" for name, (_, _, what) in BACKENDS.items())
