"""Grading a part that runs on the host (`runs_on: host`): the script's `docker` reaches a policy proxy.

Such a part's task is the docker CLI itself (start a container with a memory limit, read
its cgroup, make it run out of memory). A submission's script never gets the engine's
socket. It runs in a *runner* container of the grading session (no network, every
capability dropped, no-new-privileges, the lab's pids and memory limits), where:

- /var/run/docker.sock is the socket of a `labcoat.dockerproxy.DockerProxy`, which
  forwards to the engine only what the part's `learner_docker:` policy allows, labels
  every container it creates with the grading session's labels (the grader removes them
  with its sandboxes) and refuses the rest with a reason the docker CLI prints;
- /usr/local/bin/docker is the host's docker CLI, mounted read-only (a static binary,
  or Debian's, which needs only the libc the lab's Debian image has);
  `$LABCOAT_DOCKER_CLI` names another one;
- $LAB_SANDBOX names the lab's main sandbox, where `docker exec "$LAB_SANDBOX" answer ...`
  records answers (the proxy allows exec and inspect there, nothing else).

The checks then run as `lab check` runs them; the names the script gave its containers
are looked up among the containers the proxy created, never elsewhere on the host.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from labcoat.errors import InfrastructureFailure, LabError

if TYPE_CHECKING:
    from labcoat.backends.base import Backend, Machine
    from labcoat.content.catalog import Catalog
    from labcoat.content.models import Lab, Part
    from labcoat.dockerproxy import Policy
    from labcoat.grading.limits import Limits
    from labcoat.grading.results import ScriptRun
    from labcoat.grading.sandboxes import GradeSession

CLI_IN_RUNNER = "/usr/local/bin/docker"
SOCKET_IN_RUNNER = "/var/run/docker.sock"
ROLE = "labcoat.role"


def docker_cli() -> Path:
    """The docker CLI binary to mount into the runner ($LABCOAT_DOCKER_CLI, else the one on PATH)."""
    found = os.environ.get("LABCOAT_DOCKER_CLI") or shutil.which("docker")
    if not found or not Path(found).is_file():
        raise InfrastructureFailure("no docker CLI on the grading host: a part that uses `docker` cannot be graded",
                                    hint="install one (apt-get install docker.io) or set LABCOAT_DOCKER_CLI")
    return Path(found).resolve()


def policy_for(catalog: Catalog, backend: Backend, lab: Lab, part: Part, limits: Limits | None = None) -> Policy:
    """The part's `learner_docker:` policy, its image resolved to what is on this engine.

    `limits.cpus` (the fair share of capacity.cpu_cap, which counts these containers) caps what
    each learner container gets; every file in them is capped at the lab's disk limit.
    """
    from labcoat.backends.images import repository
    from labcoat.dockerproxy import Policy
    from labcoat.runner.session import ensure_lab_image

    spec = part.learner_docker
    image_id = spec.image if spec else lab.sandbox.image
    tag = ensure_lab_image(catalog, backend, image_id, lambda m, f: None)
    try:
        found = backend.image_id(tag)
    except Exception as exc:  # noqa: BLE001 - the engine's problem, not the student's
        raise InfrastructureFailure(f"cannot inspect the image {tag}: {exc}") from None
    if found is None:
        raise InfrastructureFailure(f"cannot inspect the image {tag}: the engine has no such image")
    names = frozenset({tag, repository(image_id), f"{repository(image_id)}:latest", found})
    memory = spec.max_memory_bytes if spec else (part.sandbox or lab.sandbox).memory_bytes
    cap, max_file = (limits.cpus if limits else None), lab.sandbox.disk_bytes
    if spec:
        return Policy(tag, names, memory, spec.max_containers, spec.pids_limit, spec.cpus, cpu_cap=cap,
                      max_file=max_file)
    return Policy(tag, names, memory, cpu_cap=cap, max_file=max_file)


def run_host_script(gs: GradeSession, part: Part, text: str) -> ScriptRun:
    """Run a host part's script in a runner container whose docker goes through the policy proxy."""
    from labcoat.dockerproxy import DockerProxy, upstream_from_env
    from labcoat.grading.containment import run_script_in_sandbox

    assert gs.session is not None
    backend, lab = gs.backend, gs.lab
    main = gs.session.main
    target = gs.session.for_part(part.id)
    cli = docker_cli()
    policy = policy_for(gs.catalog, backend, lab, part, gs.limits)
    sandboxes = {sb.machine.name: sb.machine.id for sb in {id(main): main, id(target): target}.values()}
    sandboxes.update({v: v for v in list(sandboxes.values())})
    endpoint = backend.api_endpoint()
    if endpoint is None:
        raise InfrastructureFailure(f"the {backend.name} backend has no Docker-compatible API for a part that "
                                    "uses `docker`", hint="grade with a container backend (--backend docker)")
    proxy = DockerProxy(policy, gs.labels(part.id), prefix=f"labcoat-grade-{gs.session_id}", sandboxes=sandboxes,
                        upstream=upstream_from_env(endpoint))
    runner = None
    with proxy:
        try:
            runner = _start_runner(gs, part, proxy.socket_path, cli, main.machine.name, str(target.seed))
            machine = runner
            probe = backend.run(machine, ["docker", "version", "--format", "{{.Server.APIVersion}}"], timeout=30)
            if not probe.succeeded:
                raise InfrastructureFailure(
                    f"the docker CLI {cli} does not run in the grading sandbox: "
                    f"{(probe.stderr or probe.stdout).strip()[:200]}",
                    hint="set LABCOAT_DOCKER_CLI to a static docker binary")
            # The runner's layer and those of the learner containers (the part's labels) count together.
            run = run_script_in_sandbox(backend, machine, part, text, gs.limits, disk=lab.sandbox.disk_bytes,
                                        labels=gs.labels(part.id), also=gs.labels(part.id))
        finally:
            if runner is not None:
                with contextlib.suppress(LabError):
                    backend.remove(runner)
    target.learner_names = proxy.names()
    said = []
    if proxy.refusals:
        unique = list(dict.fromkeys(proxy.refusals))
        said.append(f"the docker policy refused {len(proxy.refusals)} request(s): " + " | ".join(unique[:3]))
    # `docker rm -f NAME` of a name not created yet is the usual clean slate, not worth a note.
    foreign = [m for m in proxy.unknown if "No such container" in m and "docker rm refused" not in m]
    if foreign:
        said.append(f"{len(foreign)} docker command(s) named a container the script did not create")
    if said:
        run.note = "; ".join([run.note, *said] if run.note else said)
    return run


def _start_runner(gs: GradeSession, part: Part, sock: str, cli: Path, lab_sandbox: str, seed: str) -> Machine:
    """The locked-down container the script runs in: the proxy's socket and the docker CLI, nothing more."""
    from labcoat.backends.base import MachineSpec

    spec = gs.lab.sandbox
    tag = _image_tag(gs)
    pids = min(spec.pids_limit, gs.limits.pids_limit) if gs.limits.pids_limit else spec.pids_limit
    labels = {**gs.labels(part.id), ROLE: "docker-runner"}
    name = f"labcoat-grade-{gs.lab.id.replace('.', '-')}-{part.id}-docker-{gs.session_id}"
    try:
        return gs.backend.start(MachineSpec(
            image=tag, memory=spec.memory_bytes, name=name, pids_limit=pids, cpus=gs.limits.cpus or spec.cpus or 1,
            disk=spec.disk_bytes,
            cap_drop=("ALL",), env={"LAB_SANDBOX": lab_sandbox, "LAB_SEED": seed, "LAB_PART": part.id, "HOME": "/root"},
            mounts={sock: SOCKET_IN_RUNNER}, ro_mounts={str(cli): CLI_IN_RUNNER},
        ), labels)
    except Exception as exc:  # noqa: BLE001 - the engine's problem, not the student's
        raise InfrastructureFailure(f"could not start the sandbox for {part.id}'s docker commands: {exc}") from None


def _image_tag(gs: GradeSession) -> str:
    from labcoat.runner.session import ensure_lab_image

    return ensure_lab_image(gs.catalog, gs.backend, gs.lab.sandbox.image, lambda m, f: None)


def template_lines(part: Part, limits: Limits) -> list[str]:
    """What a submission template says about a host part (how `lab grade` runs it)."""
    spec = part.learner_docker
    memory = spec.max_memory if spec else "the part's sandbox memory"
    count = spec.max_containers if spec else 2
    return [
        "# `lab grade` runs this file with bash, as root, in a locked-down container of its own: no network,",
        f"# no capabilities, at most {limits.script_timeout:g} s and {limits.max_output // 1024} KiB of output.",
        "# There `docker` reaches a proxy that allows only what this part needs: containers of the lab's",
        f"# image, --memory at most {memory} with --memory-swap equal, --network none, at most {count} at a",
        "# time; no mounts, devices, privileges or host namespaces, no image pulls or builds. It refuses",
        "# the rest with `labcoat policy: ... refused: reason`. $LAB_SANDBOX names the lab's sandbox:",
        f"#   docker exec \"$LAB_SANDBOX\" answer {part.id} KEY VALUE",
        "# Then the part's checks run, as `lab check " + part.id + "` does.",
        "#",
    ]
