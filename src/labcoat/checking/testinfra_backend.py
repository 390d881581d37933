"""A pytest-testinfra backend that runs commands through labcoat's sandbox backend.

Stock testinfra's docker backend spawns one `docker exec` subprocess per command
(~70 ms here). This one calls the Docker SDK directly (one HTTP round trip, ~50 ms),
or the local backend. Checks do not notice: they get an ordinary `testinfra.host.Host`.
"""

from __future__ import annotations

from typing import Any

from testinfra.backend import base

from labcoat.backends.base import Backend, Machine


class LabcoatBackend(base.BaseBackend):
    NAME = "labcoat"

    def __init__(self, backend: Backend, machine: Machine, *, timeout: float = 30, **kwargs: Any) -> None:
        self._backend = backend
        self._machine = machine
        self._timeout = timeout
        super().__init__(machine.name, **kwargs)

    def run(self, command: str, *args: str, **kwargs: Any) -> base.CommandResult:
        cmd = self.get_command(command, *args)
        result = self._backend.run(self._machine, ["/bin/sh", "-c", cmd], timeout=self._timeout)
        return self.result(result.exit_status, self.encode(cmd), result.stdout.encode(), result.stderr.encode())


def make_host(backend: Backend, machine: Machine) -> Any:
    """A testinfra Host whose commands run in `machine`."""
    from testinfra.host import Host

    return Host(LabcoatBackend(backend, machine))
