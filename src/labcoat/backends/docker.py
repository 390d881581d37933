"""Sandboxes as Docker containers, driven through the Docker SDK (no `docker` CLI subprocesses).

Every container carries labcoat labels, so `find` can recover it after a lost state
file, a crash or a SIGKILL. `--memory-swap` always equals `--memory`: with the Docker
default (2x, moby daemon/daemon_unix.go adaptContainerSettings) a lab behaves differently on a
host that has swap.
"""

from __future__ import annotations

import io
import socket
import tarfile
import time
from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from labcoat.backends.base import Backend, CommandResult, Machine, MachineSpec
from labcoat.errors import EnvironmentProblem

if TYPE_CHECKING:
    from collections.abc import Callable

    from labcoat.content.models import Image

DOCKER_HINT = (
    "start the Docker engine: `sudo systemctl start docker`, or where no init system runs it, "
    "`sudo dockerd >/var/log/dockerd.log 2>&1 &` (scripts/ensure-docker.sh does this and installs it if missing)"
)

# Exit status of coreutils `timeout` when the command ran out of time.
TIMEOUT_EXIT = 124


def connect(base_url: str | None = None, *, engine: str = "Docker engine", hint: str = DOCKER_HINT) -> Any:
    """A Docker SDK client (of DOCKER_HOST, or of `base_url`: any Docker-compatible API), or
    EnvironmentProblem saying how to start the engine."""
    import os
    import re

    import docker
    from docker.errors import DockerException

    where = base_url or os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.DockerClient(base_url=base_url, timeout=120) if base_url else docker.from_env(timeout=120)
        client.ping()
    except DockerException as exc:
        # The SDK's message nests the real reason: keep the innermost readable part of it.
        found = re.findall(r"(No such file or directory|Connection refused|Permission denied|timed out)", str(exc))
        reason = found[-1] if found else str(exc).split(":")[0]
        raise EnvironmentProblem(f"cannot reach the {engine} at {where} ({reason})", hint=hint) from None
    return client


def _api_errors() -> tuple[type[BaseException], ...]:
    from docker.errors import DockerException
    from requests.exceptions import RequestException

    return (DockerException, RequestException, socket.timeout)


class DockerBackend(Backend):
    """Backend on the Docker SDK; one API call per command, no subprocesses."""

    name: ClassVar[str] = "docker"
    # A sandbox's writable layer can be measured from the host (inspect: GraphDriver, SizeRw), so a
    # learner's sandboxes are disk-bounded by runner/diskwatch.py where the engine has no quota.
    watches_layers: ClassVar[bool] = True

    @cached_property
    def client(self) -> Any:
        return connect()

    @staticmethod
    def preload() -> None:
        _api_errors()  # imports the Docker SDK and requests

    # ------------------------------------------------------------------ lifecycle

    def start(self, spec: MachineSpec, labels: Mapping[str, str]) -> Machine:
        """Create and start a container; it is labelled before it exists, so nothing orphans."""
        kwargs: dict[str, Any] = {
            "image": spec.image,
            "command": list(spec.command),
            "detach": True,
            "labels": dict(labels),
            "mem_limit": spec.memory,
            "memswap_limit": spec.memory + spec.swap,  # equal unless the content allows swap
            "pids_limit": spec.pids_limit,
            "init": True,
            "hostname": spec.hostname,
            "environment": dict(spec.env),
            "cap_add": list(spec.cap_add) or None,
            "cap_drop": list(spec.cap_drop) or None,
            "security_opt": ["no-new-privileges"] if spec.no_new_privileges else None,
            "network_mode": None if spec.network else "none",
        }
        if not spec.keep_log:
            from docker.types import LogConfig

            kwargs["log_config"] = LogConfig(type=LogConfig.types.NONE)
        if spec.name:
            kwargs["name"] = spec.name
        if spec.cpus:
            kwargs["nano_cpus"] = int(spec.cpus * 1e9)
        if spec.mounts or spec.ro_mounts:
            kwargs["volumes"] = {src: {"bind": dest, "mode": "rw"} for src, dest in spec.mounts.items()}
            kwargs["volumes"].update({src: {"bind": dest, "mode": "ro"} for src, dest in spec.ro_mounts.items()})
        kwargs.update(disk_and_shares(spec, self.supports))
        self._engine_options(spec, kwargs)
        try:
            try:
                container = self.client.containers.run(**kwargs)
            except _api_errors() as exc:
                if "storage_opt" not in kwargs or "storage-opt" not in str(exc).lower():
                    raise
                # xfs without the pquota mount option: no engine quota here after all (diskwatch bounds it).
                self.supports["StorageOptSize"] = False
                kwargs.pop("storage_opt")
                container = self.client.containers.run(**kwargs)
        except _api_errors() as exc:
            from docker.errors import APIError

            # The engine answered (a name in use, an image gone): starting it is not the fix.
            hint = "`lab stop --all` removes leftover sandboxes" if isinstance(exc, APIError) else DOCKER_HINT
            raise EnvironmentProblem(f"could not start the sandbox: {_explain(exc)}", hint=hint) from None
        return self._machine(container)

    def _engine_options(self, spec: MachineSpec, kwargs: dict[str, Any]) -> None:
        """Adjust the `containers.run` arguments for this engine (a subclass's hook; Docker needs none)."""

    @cached_property
    def supports(self) -> dict[str, bool]:
        """What this engine's cgroups can enforce (docker info: BlkioWeight, CpuShares, ...)."""
        try:
            info = self.client.info()
        except Exception:  # noqa: BLE001 - unknown: the engine then applies only what it supports
            return {}
        found = {key: bool(info.get(key)) for key in ("CPUShares", "CpuCfsQuota", "PidsLimit")}
        found["CpuShares"] = found.pop("CPUShares")
        found["BlkioWeight"] = io_weight_supported(int(info.get("CgroupVersion") or 1))
        found["StorageOptSize"] = storage_quota_supported(info)
        return found

    def find(self, labels: Mapping[str, str], *, include_stopped: bool = True) -> list[Machine]:
        """Containers carrying all of these labels (a value of "" matches any value)."""
        filters = {"label": [f"{k}={v}" if v else k for k, v in labels.items()]}
        try:
            found = self.client.containers.list(all=include_stopped, filters=filters, sparse=True)
        except _api_errors() as exc:
            raise EnvironmentProblem(f"cannot list containers: {_explain(exc)}", hint=DOCKER_HINT) from None
        return [self._machine(c) for c in found]

    def remove(self, machine: Machine) -> None:
        """Remove the container and its anonymous volumes; already gone is fine."""
        from docker.errors import NotFound

        try:
            self.client.api.remove_container(machine.id, force=True, v=True)
        except NotFound:
            pass
        except _api_errors() as exc:
            # A removal already in progress is also fine.
            if "already in progress" not in str(exc):
                raise EnvironmentProblem(f"could not remove {machine.name}: {_explain(exc)}") from None

    def resume(self, machine: Machine, timeout: float = 60) -> Machine:
        """Start a stopped container again as it is (its files, labels and limits kept); the running Machine."""
        try:
            self.client.api.start(machine.id)
            deadline = time.monotonic() + timeout
            while True:
                state = self.client.api.inspect_container(machine.id).get("State", {})
                if state.get("Running") and state.get("Pid"):
                    break
                if time.monotonic() > deadline:
                    raise EnvironmentProblem(f"{machine.name} did not start again within {timeout:g} s "
                                             f"(state {state.get('Status')})", hint="`lab start --fresh` starts anew")
                time.sleep(0.1)
            return self._machine(self.client.containers.get(machine.id))
        except _api_errors() as exc:
            raise EnvironmentProblem(f"could not resume {machine.name}: {_explain(exc)}",
                                     hint="`lab start --fresh` starts new sandboxes (the answers in the old ones "
                                     "are lost)") from None

    def inspect(self, machine: Machine, *, size: bool = False) -> dict[str, Any]:
        """The engine's full record of the container (HostConfig, State, ...; SizeRw with `size`)."""
        info = dict(self.client.api.inspect_container(machine.id))
        if size:  # the SDK's inspect takes no `size`; its container list does
            listed = self.client.api.containers(all=True, filters={"id": machine.id}, size=True)
            info["SizeRw"] = (listed[0].get("SizeRw") or 0) if listed else None
        return info

    def freeze(self, machine: Machine) -> None:
        """`docker pause`: the cgroup freezer stops every process of the container."""
        self.client.api.pause(machine.id)

    def thaw(self, machine: Machine) -> None:
        """`docker unpause`."""
        self.client.api.unpause(machine.id)

    def changed_files(self, machine: Machine) -> list[str]:
        """`docker diff`: paths added, changed or deleted since the image."""
        return [c["Path"] for c in self.client.api.diff(machine.id) or []]

    def run_beside(self, machine: Machine, argv: Sequence[str], labels: Mapping[str, str]) -> None:
        """A throwaway container of the machine's image in its PID namespace, run to its end."""
        image = self.inspect(machine)["Config"]["Image"]
        self.client.containers.run(
            image=image, command=list(argv), pid_mode=f"container:{machine.id}", network_mode="none",
            cap_drop=["ALL"], security_opt=["no-new-privileges"], pids_limit=16, mem_limit=32 << 20,
            remove=True, labels=dict(labels), detach=False)

    def limits(self, machine: Machine) -> dict[str, Any]:
        """Memory, pids, network and disk limits as the engine set them (HostConfig), and the cgroup version."""
        host = self.inspect(machine).get("HostConfig", {})
        version = self.client.info().get("CgroupVersion", "1")
        return {
            "memory_limit": host.get("Memory") or None,
            "memory_swap_limit": host.get("MemorySwap") or None,
            "pids_limit": host.get("PidsLimit"),
            "network": host.get("NetworkMode"),
            "cgroup_version": int(version),
            **disk_limits(host),
        }

    # ------------------------------------------------------------------ images, engine, shell

    def ensure_image(self, image_id: str, image: Image | None, image_dir: Path | None,
                     progress: Callable[[str, float | None], None] | None = None) -> str:
        """Build the image when its recipe's tag is missing; also tag it `labcoat/<id>:latest`."""
        from labcoat.backends.images import ensure_image, repository

        if image is None or image_dir is None:
            raise EnvironmentProblem(f"no image {image_id!r} in the content folder")
        tag = str(ensure_image(self.client, image, image_dir, progress=progress))
        # `labcoat/<id>:latest` is the name instructions can give learners (one cheap API call).
        self.client.api.tag(tag, repository(image_id), "latest", force=True)
        return tag

    def image_id(self, tag: str) -> str | None:
        """The engine's id of this image, or None when it has none."""
        from docker.errors import ImageNotFound

        try:
            return str(self.client.images.get(tag).id)
        except ImageNotFound:
            return None

    def has_image(self, tag: str) -> bool:
        return bool(self.client.images.list(name=tag))

    def save_image(self, tag: str) -> Iterator[bytes]:
        try:
            yield from self.client.api.get_image(tag, chunk_size=1 << 20)
        except _api_errors() as exc:
            raise EnvironmentProblem(f"docker save {tag} failed: {exc}") from None

    def engine_info(self) -> dict[str, Any] | None:
        """`docker info` with `docker version`'s Version and ApiVersion."""
        info = dict(self.client.info())
        version = self.client.version()
        info["Version"], info["ApiVersion"] = version.get("Version"), version.get("ApiVersion")
        return info

    def shell_command(self, machine: Machine, *, user: str | None = None) -> tuple[list[str], dict[str, str]]:
        """`docker exec -it` of a login shell in /root."""
        import os
        import shutil

        docker = shutil.which(self.cli)
        if docker is None:
            raise EnvironmentProblem(f"the `{self.cli}` command is not installed", hint=self.cli_hint)
        argv = [docker, "exec", "-it", "-w", "/root", "-e", "PS1=lab:\\w# "]
        if user:
            argv += ["-u", user]
        return [*argv, machine.id, "bash"], dict(os.environ)

    def api_endpoint(self) -> str | None:
        import os

        return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"

    def host_env(self) -> dict[str, str]:
        """The docker CLI's DOCKER_HOST for this engine (where it is not the CLI's own default)."""
        where = self.api_endpoint()
        return {} if where == "unix:///var/run/docker.sock" else {"DOCKER_HOST": str(where)}

    cli: ClassVar[str] = "docker"
    cli_hint: ClassVar[str] = "apt-get install docker.io"

    # ------------------------------------------------------------------ the learner's containers

    def inspect_named(self, name: str) -> dict[str, Any] | None:
        """`docker inspect NAME`, or None when there is no such container."""
        from docker.errors import NotFound

        try:
            return dict(self.client.api.inspect_container(name))
        except NotFound:
            return None

    def remove_named(self, names: Sequence[str]) -> list[str]:
        """`docker rm -f` of each name that exists."""
        from docker.errors import NotFound

        removed = []
        for name in names:
            try:
                self.client.containers.get(name).remove(force=True)
                removed.append(name)
            except NotFound:
                pass
        return removed

    def host_pid(self, machine: Machine) -> int | None:
        """PID of the container's init on the host (to find its cgroup), or None when stopped."""
        state = self.inspect(machine).get("State", {})
        pid = int(state.get("Pid") or 0)
        return pid or None

    # ------------------------------------------------------------------ commands

    def run(
        self,
        machine: Machine,
        argv: Sequence[str],
        *,
        user: str | None = None,
        timeout: float | None = 60,
        env: Mapping[str, str] | None = None,
        max_output: int = 1 << 20,
    ) -> CommandResult:
        """Run argv in the container; a timeout kills it inside, output beyond max_output is dropped."""
        cmd = list(argv)
        if timeout is not None:
            cmd = ["timeout", "-k", "2", f"{timeout:g}", *cmd]
        began = time.monotonic()
        api = self.client.api
        try:
            exec_id = api.exec_create(machine.id, cmd, user=user or "", environment=dict(env or {}))["Id"]
            stream = api.exec_start(exec_id, stream=True, demux=True)
            out, err, truncated = _collect(stream, max_output)
            status = api.exec_inspect(exec_id).get("ExitCode")
        except _api_errors() as exc:
            raise EnvironmentProblem(
                f"could not run a command in {machine.name}: {_explain(exc)}",
                hint="is the sandbox still running? `lab status` tells; `lab start` starts a new one",
            ) from None
        exit_status = -1 if status is None else int(status)
        return CommandResult(
            exit_status=exit_status,
            stdout=out,
            stderr=err,
            duration=time.monotonic() - began,
            timed_out=timeout is not None and exit_status in (TIMEOUT_EXIT, 137) and
            time.monotonic() - began >= timeout,
            truncated=truncated,
        )

    def spawn(self, machine: Machine, argv: Sequence[str], *, user: str | None = None) -> None:
        """Start argv in the container and return at once (it dies with the container)."""
        api = self.client.api
        try:
            exec_id = api.exec_create(machine.id, list(argv), user=user or "")["Id"]
            api.exec_start(exec_id, detach=True)
        except _api_errors() as exc:
            raise EnvironmentProblem(f"could not start a process in {machine.name}: {_explain(exc)}") from None

    def put(self, machine: Machine, src: Path, dest: str) -> None:
        """Copy a file or folder from the host to `dest` (a folder) in the container."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(str(src), arcname=src.name)
        try:
            self.client.api.put_archive(machine.id, dest, buf.getvalue())
        except _api_errors() as exc:
            raise EnvironmentProblem(f"could not copy {src} into {machine.name}:{dest}: {_explain(exc)}") from None

    def put_bytes(self, machine: Machine, data: bytes, dest: str, mode: int = 0o644) -> None:
        """Write `data` to the file `dest` in the container."""
        folder, _, name = dest.rpartition("/")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))
        self.run(machine, ["mkdir", "-p", folder or "/"], timeout=10)
        try:
            self.client.api.put_archive(machine.id, folder or "/", buf.getvalue())
        except _api_errors() as exc:
            raise EnvironmentProblem(f"could not write {dest} in {machine.name}: {_explain(exc)}") from None

    # ------------------------------------------------------------------ helpers

    def _machine(self, container: Any) -> Machine:
        attrs = container.attrs
        labels = attrs.get("Labels") or attrs.get("Config", {}).get("Labels") or {}
        state = attrs.get("State")
        status = state.get("Status") if isinstance(state, dict) else state
        name = (attrs.get("Names") or [attrs.get("Name", container.id)])[0].lstrip("/")
        return Machine(id=container.id, name=name, labels=dict(labels), status=str(status), handle=container)


def io_weight_supported(version: int, root: Path = Path("/sys/fs/cgroup")) -> bool:
    """Whether this host's cgroups take a block I/O weight (docker info does not say).

    v1: the blkio controller has blkio.weight (the CFQ/BFQ schedulers; not mq-deadline).
    v2: the io controller is available.
    """
    if version == 2:
        try:
            return "io" in (root / "cgroup.controllers").read_text().split()
        except OSError:
            return False
    return (root / "blkio" / "blkio.weight").exists() or (root / "blkio" / "blkio.bfq.weight").exists()


def storage_quota_supported(info: Mapping[str, Any]) -> bool:
    """Whether `--storage-opt size=` can bound a container's writable layer on this engine (docker info).

    Only overlay2 on xfs (it needs the pquota mount option, which docker info does not show:
    `start` falls back when the engine refuses). btrfs and zfs also take a size, but theirs
    counts differently (btrfs: the image's files too), so they are not used.
    """
    status = {str(k): str(v) for k, v in (info.get("DriverStatus") or []) if isinstance(k, str)}
    return info.get("Driver") == "overlay2" and status.get("Backing Filesystem", "").lower() == "xfs"


def disk_limits(host: dict[str, Any]) -> dict[str, Any]:
    """The disk, tmpfs and CPU/I-O limits as the engine set them (HostConfig)."""
    from labcoat.units import parse_size

    # Docker names it "fsize", Podman "RLIMIT_FSIZE".
    fsize = next((u.get("Hard") for u in host.get("Ulimits") or []
                  if str(u.get("Name", "")).lower().removeprefix("rlimit_") == "fsize"), None)
    tmpfs = {}
    quota = (host.get("StorageOpt") or {}).get("size") or None
    for path, opts in (host.get("Tmpfs") or {}).items():
        size = next((o.split("=", 1)[1] for o in opts.split(",") if o.startswith("size=")), None)
        tmpfs[path] = parse_size(size) if size else None
    return {
        "disk": {"per_file": fsize, "read_only_root": bool(host.get("ReadonlyRootfs")), "tmpfs": tmpfs,
                 "quota": quota,
                 "enforced": "read-only root filesystem, tmpfs folders only" if host.get("ReadonlyRootfs") else
                 (f"the engine's quota on the writable layer (--storage-opt size={quota}); " if quota else "")
                 + "no file bigger than per_file (RLIMIT_FSIZE); tmpfs folders count against the memory limit"},
        "cpus": (host.get("NanoCpus") or 0) / 1e9 or None,
        "cpu_shares": host.get("CpuShares") or None,
        "io_weight": host.get("BlkioWeight") or None,
    }


def disk_and_shares(spec: MachineSpec, supports: Mapping[str, bool]) -> dict[str, Any]:
    """The `containers.run` arguments for the disk bound, the tmpfs folders and the CPU/I-O weights."""
    from docker.types import Ulimit

    kwargs: dict[str, Any] = {}
    if spec.disk:
        kwargs["ulimits"] = [Ulimit(name="fsize", soft=spec.disk, hard=spec.disk)]
    if spec.tmpfs:
        kwargs["tmpfs"] = {path: f"rw,nosuid,nodev,exec,size={size},mode=1777" for path, size in spec.tmpfs.items()}
    if spec.read_only:
        kwargs["read_only"] = True
    elif spec.disk and supports.get("StorageOptSize"):  # the whole writable layer, by the engine
        kwargs["storage_opt"] = {"size": str(spec.disk)}
    if spec.cpu_shares and supports.get("CpuShares", True):
        kwargs["cpu_shares"] = spec.cpu_shares
    if spec.io_weight and supports.get("BlkioWeight"):  # else the engine discards it with a warning
        kwargs["blkio_weight"] = spec.io_weight
    return kwargs


def _collect(stream: Any, limit: int) -> tuple[str, str, bool]:
    out, err = bytearray(), bytearray()
    truncated = False
    for chunk_out, chunk_err in stream:
        for buf, chunk in ((out, chunk_out), (err, chunk_err)):
            if chunk:
                room = limit - len(buf)
                if room > 0:
                    buf += chunk[:room]
                if len(chunk) > room:
                    truncated = True
    return out.decode(errors="replace"), err.decode(errors="replace"), truncated


def _explain(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc).strip()
