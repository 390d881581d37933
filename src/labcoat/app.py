"""The application object every command receives: settings plus lazily built services.

Nothing heavy is imported at module level: `lab --help` must not pay for Docker,
pytest or the content catalog.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from labcoat.backends.base import Backend
    from labcoat.content.catalog import Catalog


@dataclass
class App:
    """Settings from the command line (CLI > environment > defaults) and shared services."""

    content: Path | None = None
    backend_name: str = "docker"
    debug: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def console(self) -> Console:
        from rich.console import Console

        return Console(highlight=False)

    @cached_property
    def err_console(self) -> Console:
        from rich.console import Console

        return Console(stderr=True, highlight=False)

    @cached_property
    def catalog(self) -> Catalog:
        from labcoat.content.catalog import Catalog

        return Catalog.load(self.content)

    @cached_property
    def backend(self) -> Backend:
        from labcoat.backends import get_backend

        return get_backend(self.backend_name)

    def print_json(self, data: Any) -> None:
        """Machine output: plain JSON on stdout, nothing else."""
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
        sys.stdout.flush()
