"""Sandboxes as Podman containers, through Podman's Docker-compatible API (`podman system service`).

Podman serves the Docker Engine API on a unix socket, so this backend is the Docker
backend with another client: every call (create, exec, archive, pause, diff, inspect,
import, tag) goes through the same Docker SDK code. What differs, measured with Debian's
podman 4.3 (rootful, cgroup v1, cgroupfs manager, runc):

- **The service.** Without systemd nobody starts `podman.socket`. When the socket
  ($LABCOAT_PODMAN_HOST, else CONTAINER_HOST, else unix:///run/podman/podman.sock) does
  not answer and `podman` is installed, this backend starts `podman system service
  --time=IDLE_SECONDS` on it: the service exits by itself after that many idle seconds,
  so nothing outlives the labs that used it.
- **rlimits.** Podman asks runc for its own defaults (nofile 1048576, nproc 4194304)
  and falls back to what it has; runc inherits conmon's hard limits, which podman lowered
  (nproc 32768 here, nofile the caller's), and a container start then fails with
  "error setting rlimit type 6/7: operation not permitted" where the caller lacks
  CAP_SYS_RESOURCE. So every container gets explicit nofile and nproc limits, within
  this process's own hard limits and podman's 32768 processes. RLIMIT_NPROC counts the
  user's processes host-wide: 32768 is far above the sandboxes' pids limits, which bound them.
  The containers a learner's `docker run` creates (part scripts that run on the host) get
  the same limits as defaults: the service this backend starts reads a containers.conf of
  its own ($CONTAINERS_CONF, in labcoat's state folder) with `default_ulimits`.
- **exec clean-up.** Every exec keeps a conmon process for `exit_command_delay` after it ends
  (300 s by default); checks run many execs, so the service's conf shortens it.
- **init.** `init: true` needs podman's init binary (Debian: the `catatonit` package,
  /usr/libexec/podman/catatonit); its absence is reported with that fix.
- **Images** are named `localhost/labcoat/<id>:<hash>` by podman; the engine resolves
  `labcoat/<id>:<hash>` to them. The `labcoat/<id>:latest` tag labcoat adds through the
  compat API becomes `docker.io/labcoat/<id>:latest`; a learner's `docker run
  labcoat/sandbox:latest` finds it locally all the same (no pull). A sandbox image built for Docker moves over with
  `docker save labcoat/sandbox:latest | podman load`; otherwise it is built as for Docker
  (debootstrap and an API import).
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import time
from collections.abc import Mapping
from functools import cached_property
from typing import Any, ClassVar

from labcoat.backends.base import Machine, MachineSpec
from labcoat.backends.docker import DockerBackend, connect
from labcoat.errors import EnvironmentProblem

DEFAULT_SOCKET = "unix:///run/podman/podman.sock"
IDLE_SECONDS = 600  # the service we start exits after this long without a request
PODMAN_HINT = ("install podman (apt-get install podman catatonit) and start its API: "
               "`podman system service --time=0 unix:///run/podman/podman.sock &` (or set LABCOAT_PODMAN_HOST)")
NPROC_CEILING = 32768  # conmon's hard RLIMIT_NPROC when podman could not raise it (see the module doc)
# Seconds a finished exec's conmon waits before cleaning up. Podman's default (300, "Docker's exec
# clean-up") kept 561 conmon processes (860 MiB RSS) alive after one lifecycle test run here; the
# exit code is on disk at once, and `run` asks for it right after the output ends.
EXEC_CLEANUP_DELAY = 10


def endpoint() -> str:
    """Where Podman's API listens: $LABCOAT_PODMAN_HOST, else $CONTAINER_HOST, else the rootful default."""
    return os.environ.get("LABCOAT_PODMAN_HOST") or os.environ.get("CONTAINER_HOST") or DEFAULT_SOCKET


def _answers(where: str) -> bool:
    import socket

    if not where.startswith("unix://"):
        return True  # a tcp endpoint is someone else's to run: connect() says if it does not answer
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(where.removeprefix("unix://"))
        return True
    except OSError:
        return False
    finally:
        s.close()


def rlimits() -> tuple[int, int]:
    """(nofile, nproc) every container gets: this process's hard limits, capped as runc can set them."""
    _, nofile = resource.getrlimit(resource.RLIMIT_NOFILE)
    _, nproc = resource.getrlimit(resource.RLIMIT_NPROC)
    nofile = min(nofile if nofile != resource.RLIM_INFINITY else 1 << 20, 1 << 20)
    nproc = min(nproc if nproc != resource.RLIM_INFINITY else NPROC_CEILING, NPROC_CEILING)
    return nofile, nproc


def service_conf() -> str:
    """The containers.conf the service we start reads: default rlimits runc can set (see the module doc)."""
    from labcoat.paths import state_dir

    nofile, nproc = rlimits()
    path = state_dir() / "podman" / "containers.conf"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# written by labcoat's podman backend\n[containers]\n"
                    f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
                    f"[engine]\nexit_command_delay = {EXEC_CLEANUP_DELAY}\n")
    return str(path)


def ensure_service(where: str, timeout: float = 20) -> None:
    """Start `podman system service` on this unix socket when nothing answers there (it exits when idle)."""
    if _answers(where):
        return
    podman = shutil.which("podman")
    if podman is None:
        raise EnvironmentProblem(f"cannot reach Podman at {where}, and the `podman` command is not installed",
                                 hint=PODMAN_HINT)
    path = where.removeprefix("unix://")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    conf = service_conf()
    # cwd: conmon writes an empty file `oom` into its working directory after each OOM kill (as well as
    # into its persist dir), and inherits the service's: without this, the learner's current folder.
    subprocess.Popen([podman, "system", "service", f"--time={IDLE_SECONDS}", where],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True, cwd=os.path.dirname(conf), env={**os.environ, "CONTAINERS_CONF": conf})
    deadline = time.monotonic() + timeout
    while not _answers(where):
        if time.monotonic() > deadline:
            raise EnvironmentProblem(f"`podman system service` did not answer at {where} within {timeout:g} s",
                                     hint=PODMAN_HINT)
        time.sleep(0.1)


class PodmanBackend(DockerBackend):
    """The Docker backend's code on Podman's Docker-compatible API."""

    name: ClassVar[str] = "podman"
    cli: ClassVar[str] = "podman"
    cli_hint: ClassVar[str] = "apt-get install podman"

    @cached_property
    def client(self) -> Any:
        where = endpoint()
        ensure_service(where)
        return connect(where, engine="Podman service", hint=PODMAN_HINT)

    def api_endpoint(self) -> str | None:
        return endpoint()

    def _engine_options(self, spec: MachineSpec, kwargs: dict[str, Any]) -> None:
        from docker.types import Ulimit

        nofile, nproc = rlimits()
        kwargs["ulimits"] = [*kwargs.get("ulimits", []), Ulimit(name="nofile", soft=nofile, hard=nofile),
                             Ulimit(name="nproc", soft=nproc, hard=nproc)]

    def start(self, spec: MachineSpec, labels: Mapping[str, str]) -> Machine:
        try:
            return super().start(spec, labels)
        except EnvironmentProblem as exc:
            if "catatonit" in exc.message or "container-init" in exc.message:
                raise EnvironmentProblem(exc.message, hint="apt-get install catatonit (podman's init for --init)") \
                    from None
            raise
