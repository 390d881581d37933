"""The proving ground's recipes as data: lanes, their kernel command lines, the image cache key.

Pure logic (unit-tested in tests/unit/test_vm_recipe.py), called by scripts/vm.sh:
    python3 scripts/vm/recipe.py image-key ROOT KVER   the base image's cache key
    python3 scripts/vm/recipe.py lane LANE             shell lines: init, docker, swap, cmdline
    python3 scripts/vm/recipe.py lanes                 the lanes `vm.sh test` runs by default
"""

# ruff: noqa: T201  (a command-line helper: it prints its answers)
from __future__ import annotations

import hashlib
import shlex
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

# Every file whose content decides what the base image holds. Edit one and the key changes, so a
# stale image is never booted. The guest-side scripts that come on the payload disk at each run
# (guest-init, run-lane.sh, scenario_summary.py) are not part of the image and not of its key.
IMAGE_INPUTS = (
    "scripts/vm/build-image.sh",   # debootstrap package list, venv, mkfs
    "scripts/vm/boot-init",        # baked as /sbin/labcoat-vm-init
    "scripts/vm/labcoat-vm.service",
)
# labcoat's dependencies (pyproject.toml [project] dependencies) are installed into the image's
# venv: they are part of the key, the rest of pyproject.toml (lint settings...) is not.
PYPROJECT = "pyproject.toml"
# Bump when the image changes for a reason no input file shows.
IMAGE_EPOCH = "1"


@dataclass(frozen=True)
class Lane:
    name: str
    init: str          # "shell": /sbin/labcoat-vm-init; "systemd": systemd as PID 1
    docker: bool       # sandboxes are Docker containers (images are loaded into the guest)
    swap: str = ""     # a swap file of this size (fallocate syntax), swap accounting on
    summary: str = ""
    podman: bool = False  # sandboxes are Podman containers: the images are loaded into podman, no dockerd

    @property
    def images(self) -> bool:
        """The payload carries the sandbox images (`docker save`), loaded by the guest's engine."""
        return self.docker or self.podman

    def cmdline(self, console: str = "ttyS0") -> str:
        parts = [f"console={console}", "root=/dev/vda", "rw", "panic=-1", "loglevel=4", f"labcoat.lane={self.name}"]
        if self.init == "shell":
            parts.append("init=/sbin/labcoat-vm-init")
        if self.docker and self.init == "shell":
            parts.append("labcoat.docker=1")
        if self.swap:
            parts += ["swapaccount=1", f"labcoat.swap={self.swap}"]
        return " ".join(parts)


LANES = {
    lane.name: lane
    for lane in (
        Lane("v2-cgroupfs", "shell", True, swap="1G",
             summary="cgroup v2, Docker's cgroupfs driver, a 1 GiB swap file with swap accounting"),
        Lane("v2-systemd", "systemd", True,
             summary="cgroup v2, systemd as init, Docker's systemd cgroup driver, no swap"),
        Lane("v2-local", "shell", False,
             summary="cgroup v2, no Docker: the local backend (a Killercoda-style VM)"),
        # issue 13 (kc): a Killercoda-shaped VM, Docker running but without labcoat's images
        Lane("v2-killercoda", "shell", True,
             summary="cgroup v2, an empty Docker, the local backend: the Killercoda export played on the VM"),
        # the second engine (issue 11): Podman's Docker-compatible API, rootful, cgroupfs manager, crun
        Lane("v2-podman", "shell", False, podman=True,
             summary="cgroup v2, no Docker: Podman (its own service, crun): lifecycle tests and selftest"),
        Lane("probe", "shell", False, summary="boots and powers off (decides KVM or TCG)"),
        Lane("shell", "shell", True, swap="1G", summary="an interactive root shell on the console"),
    )
}
DEFAULT_LANES = ("v2-cgroupfs", "v2-systemd", "v2-local")


def dependencies(pyproject: Path) -> list[str]:
    """The runtime dependencies the image's venv holds, normalised (order and spacing do not matter)."""
    project = tomllib.loads(pyproject.read_text()).get("project", {})
    return sorted("".join(dep.split()).lower() for dep in project.get("dependencies", []))


def image_key(root: Path, kernel_version: str, inputs: tuple[str, ...] = IMAGE_INPUTS,
              pyproject: str | None = PYPROJECT) -> str:
    """sha256 over the image's inputs (names and contents), labcoat's dependencies, the guest
    kernel and the epoch; 16 hex digits."""
    digest = hashlib.sha256()
    digest.update(f"epoch={IMAGE_EPOCH}\nkernel={kernel_version}\n".encode())
    if pyproject:
        digest.update(("deps=" + "\n".join(dependencies(root / pyproject)) + "\n").encode())
    for rel in inputs:
        data = (root / rel).read_bytes()
        digest.update(f"{rel}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()[:16]


def lane_shell(name: str) -> str:
    """The lane as shell assignments for vm.sh (eval'd)."""
    lane = LANES[name]
    values = {"LANE_INIT": lane.init, "LANE_DOCKER": "1" if lane.docker else "0",
              "LANE_IMAGES": "1" if lane.images else "0",
              "LANE_SWAP": lane.swap, "LANE_CMDLINE": lane.cmdline(), "LANE_SUMMARY": lane.summary}
    return "\n".join(f"{k}={shlex.quote(v)}" for k, v in values.items())


def main(argv: list[str]) -> int:
    if argv[:1] == ["image-key"] and len(argv) == 3:
        print(image_key(Path(argv[1]), argv[2]))
    elif argv[:1] == ["lane"] and len(argv) == 2:
        if argv[1] not in LANES:
            print(f"unknown lane {argv[1]!r}; lanes: {', '.join(LANES)}", file=sys.stderr)
            return 2
        print(lane_shell(argv[1]))
    elif argv == ["lanes"]:
        print(" ".join(DEFAULT_LANES))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
