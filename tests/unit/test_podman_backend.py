"""The Podman backend without Podman: its registration, service start-up, rlimits and what it tells the CLI."""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import threading
from pathlib import Path

import pytest

from labcoat.backends import BACKENDS, backend_class
from labcoat.backends import podman as pod
from labcoat.backends.base import MachineSpec
from labcoat.backends.docker import DockerBackend, disk_and_shares, disk_limits
from labcoat.errors import EnvironmentProblem


def _serve(server: socket.socket) -> None:
    """Accept one connection in the background (the probe's), quietly when the socket closes first."""

    def accept() -> None:
        with contextlib.suppress(OSError):
            server.accept()

    threading.Thread(target=accept, daemon=True).start()


def test_podman_is_registered_as_a_container_backend(cli) -> None:
    assert "podman" in BACKENDS
    cls = backend_class("podman")
    assert cls is pod.PodmanBackend and cls.is_container and cls.name == "podman"
    assert "podman" in cli("--help").stdout


def test_every_container_gets_rlimits_runc_can_set(monkeypatch) -> None:
    """Above conmon's hard limits a start fails (rlimit type 6/7: operation not permitted)."""
    monkeypatch.setattr(resource, "getrlimit", lambda which: (1024, 20000) if which == resource.RLIMIT_NOFILE
                        else (96365, 96365))
    spec = MachineSpec(image="x", memory=64 << 20, disk=256 << 20)
    kwargs = disk_and_shares(spec, {})
    pod.PodmanBackend()._engine_options(spec, kwargs)
    limits = {u["Name"]: (u["Soft"], u["Hard"]) for u in kwargs["ulimits"]}
    assert limits == {"fsize": (256 << 20, 256 << 20), "nofile": (20000, 20000),
                      "nproc": (pod.NPROC_CEILING, pod.NPROC_CEILING)}
    docker_kwargs = disk_and_shares(spec, {})
    DockerBackend()._engine_options(spec, docker_kwargs)
    assert [u["Name"] for u in docker_kwargs["ulimits"]] == ["fsize"]  # Docker's own defaults work


def test_the_disk_limit_reads_as_podman_names_it() -> None:
    host = {"Ulimits": [{"Name": "RLIMIT_NOFILE", "Hard": 20000, "Soft": 20000},
                        {"Name": "RLIMIT_FSIZE", "Hard": 268435456, "Soft": 268435456}]}
    assert disk_limits(host)["disk"]["per_file"] == 268435456
    assert disk_limits({"Ulimits": [{"Name": "fsize", "Hard": 5, "Soft": 5}]})["disk"]["per_file"] == 5


def test_no_podman_and_no_service_says_what_to_install(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(pod.shutil, "which", lambda name: None)
    with pytest.raises(EnvironmentProblem) as info:
        pod.ensure_service(f"unix://{tmp_path}/podman.sock")
    assert "apt-get install podman" in (info.value.hint or "")


def test_a_service_that_answers_is_used_as_it_is(monkeypatch, tmp_path: Path) -> None:
    path = tmp_path / "p.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(4)
    _serve(server)

    def no_spawn(*args, **kwargs):
        raise AssertionError("started a second service")

    monkeypatch.setattr(pod.subprocess, "Popen", no_spawn)
    try:
        pod.ensure_service(f"unix://{path}")
    finally:
        server.close()


def test_a_missing_service_is_started_idle_bounded(monkeypatch, tmp_path: Path) -> None:
    path = tmp_path / "run" / "p.sock"
    started: list[list[str]] = []
    envs: list[dict[str, str]] = []
    cwds: list[str] = []
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)

    def spawn(argv, **kwargs):
        started.append(argv)
        envs.append(kwargs["env"])
        cwds.append(kwargs["cwd"])
        server.bind(str(path))  # plays the service coming up
        server.listen(4)
        _serve(server)

    monkeypatch.setattr(pod.shutil, "which", lambda name: "/usr/bin/podman")
    monkeypatch.setattr(pod.subprocess, "Popen", spawn)
    try:
        pod.ensure_service(f"unix://{path}")
    finally:
        server.close()
    assert started == [["/usr/bin/podman", "system", "service", f"--time={pod.IDLE_SECONDS}", f"unix://{path}"]]
    conf = Path(envs[0]["CONTAINERS_CONF"]).read_text()  # the learner's own containers get rlimits runc can set
    nofile, nproc = pod.rlimits()
    assert f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]' in conf
    assert f"exit_command_delay = {pod.EXEC_CLEANUP_DELAY}" in conf  # a finished exec's conmon goes soon
    # conmon writes an empty `oom` file into its cwd after an OOM kill: never into the learner's folder
    assert cwds == [str(Path(envs[0]["CONTAINERS_CONF"]).parent)] and cwds[0] != os.getcwd()


def test_host_commands_reach_the_backends_engine(monkeypatch) -> None:
    monkeypatch.setenv("LABCOAT_PODMAN_HOST", "unix:///tmp/x.sock")
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    assert pod.PodmanBackend().host_env() == {"DOCKER_HOST": "unix:///tmp/x.sock"}
    assert pod.PodmanBackend().api_endpoint() == "unix:///tmp/x.sock"
    assert DockerBackend().host_env() == {}


def test_lab_shell_opens_the_engines_own_cli(monkeypatch) -> None:
    from labcoat.backends.base import Machine

    monkeypatch.setattr("shutil.which", lambda name: f"/usr/bin/{name}")
    machine = Machine(id="c0ffee", name="labcoat-x", labels={})
    for cls, cli in ((DockerBackend, "docker"), (pod.PodmanBackend, "podman")):
        argv, _ = cls().shell_command(machine, user="learner")
        assert argv == [f"/usr/bin/{cli}", "exec", "-it", "-w", "/root", "-e", "PS1=lab:\\w# ", "-u", "learner",
                        "c0ffee", "bash"]
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(EnvironmentProblem) as info:
        pod.PodmanBackend().shell_command(machine)
    assert "apt-get install podman" in (info.value.hint or "")
