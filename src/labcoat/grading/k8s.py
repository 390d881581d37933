"""`lab grade ... --emit k8s DIR`: grade a class as a Kubernetes indexed Job, one pod per shard.

Each pod grades shard `JOB_COMPLETION_INDEX + 1` of N with `lab grade --batch --shard`
and writes its reports to `/results/shard-K` on a shared volume; `lab grade merge` then
writes the class (docs/scale.md). labcoat's sandboxes are Docker containers, so every pod
has two containers:

- `grader` runs labcoat: no capabilities at all, no privilege escalation, not privileged,
  a read-only root filesystem, a memory limit; it reaches the engine through a socket in a
  pod-local volume.
- `engine` runs dockerd, which cannot work without capabilities (mounts, namespaces). The
  pod asks for the Sysbox runtime (`runtimeClassName: sysbox-runc`): the pod gets a user
  namespace of its own, so the engine's capabilities are those of an unprivileged user on
  the node. It is never `privileged`, drops every capability but the few dockerd needs,
  and may not escalate. Both containers set `SYSBOX_HONOR_CAPS=TRUE`: without it Sysbox
  gives every root process all capabilities (in the pod's namespace) whatever the manifest says.

The pod gets no service-account token, and a NetworkPolicy denies all ingress and egress
for the grading pods (the sandboxes get no network anyway).

Two things a pod's engine cannot do for itself, wired here:

- **The sandbox images.** The engine starts empty and cannot build them (no egress, no
  capabilities for debootstrap). The grader loads them (`docker load`) from
  `IMAGES_DIR`, baked into the grader image (images/grader/Dockerfile) or mounted from a
  claim (`images_claim`), and checks that every tag the lab needs is there before it grades.
  `save_images` writes those archives (`--k8s-save-images`).
- **Paths dockerd bind-mounts.** A host part's runner gets the policy proxy's socket (made
  in the grader's temp folder) and the docker CLI as bind mounts, which dockerd resolves in
  *its* container: an emptyDir is mounted at `SHARED` in both, the grader's `TMPDIR` is
  in it and the CLI is copied into it (`LABCOAT_DOCKER_CLI`), so both paths mean the same
  file on both sides.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from labcoat.content.catalog import Catalog
    from labcoat.content.models import Lab

APP = "labcoat-grade"
GRADER_IMAGE = "ghcr.io/our-course/labcoat-grader:latest"  # placeholder: built from images/grader/Dockerfile
ENGINE_IMAGE = "docker:27-dind"
RUNTIME_CLASS = "sysbox-runc"
IMAGES_DIR = "/opt/labcoat/images"  # the lab's sandbox images (`docker save` archives) in the grader image
SHARED = "/labcoat-shared"  # an emptyDir at the same path in the grader and the engine
ENGINE_SOCKET = "/run/engine"
# dockerd in a user namespace (Sysbox): what it needs to create containers, namespaced to the pod
# (docs/scale.md says why each). Every container it creates for labcoat drops ALL, so none is passed on.
ENGINE_CAPS = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_ADMIN", "SETGID", "SETPCAP",
               "SETUID", "SYS_ADMIN", "SYS_CHROOT", "SYS_PTRACE", "SYS_RESOURCE"]
UNGRADABLE = 5  # labcoat's exit code for an infrastructure problem (README)
ENGINE_WAIT = 300  # seconds the grader waits for dockerd to answer
# Sysbox gives a root process every capability (in the pod's user namespace) and ignores the container's
# `capabilities` unless told to honor them (Sysbox >= 0.5.0, "Container Capabilities Configuration").
HONOR_CAPS = {"name": "SYSBOX_HONOR_CAPS", "value": "TRUE"}


def _mib(n: int) -> str:
    return f"{max(1, -(-n // (1 << 20)))}Mi"


def lab_images(catalog: Catalog, lab: Lab, part_ids: list[str] | tuple[str, ...] = ()) -> dict[str, str]:
    """Image id -> tag (`labcoat/<id>:<recipe hash>`) of every image grading `lab` starts containers of.

    The lab's sandbox, each graded part's own sandbox and the image a host part's learner
    containers must use. The tags are computed from the recipes, without Docker.
    """
    from labcoat.backends.images.recipe import image_tag

    wanted = set(part_ids)
    ids = [lab.sandbox.image]
    for part in lab.parts:
        if wanted and part.id not in wanted:
            continue
        if part.sandbox:
            ids.append(part.sandbox.image)
        if part.runs_on == "host":
            ids.append(part.learner_docker.image if part.learner_docker else lab.sandbox.image)
    return {i: image_tag(catalog.images[i], catalog.image_dir(i)) for i in dict.fromkeys(ids)}


def save_images(catalog: Catalog, lab: Lab, folder: Path, part_ids: list[str] | tuple[str, ...] = (),
                say: Any = None) -> list[Path]:
    """`docker save` of every image `lab_images` names into folder/<id>.tar (each built first when missing)."""
    from labcoat.grading.sandboxes import grading_backend
    from labcoat.runner.session import ensure_lab_image

    backend = grading_backend()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for image_id in lab_images(catalog, lab, part_ids):
        tag = ensure_lab_image(catalog, backend, image_id, lambda m, f: None)
        if say:
            say(f"saving {tag} into {folder / (image_id + '.tar')}")
        path = folder / f"{image_id}.tar"
        partial = path.with_suffix(".tar.partial")
        with open(partial, "wb") as out:
            for chunk in backend.save_image(tag):
                out.write(chunk)
        partial.replace(path)
        written.append(path)
    return written


def _startup(grade: list[str], tags: list[str]) -> str:
    """The grader's script: share the CLI, wait for the engine, load and check the images, grade."""
    check = " ".join(shlex.quote(t) for t in tags)
    return "\n".join([
        "set -u",
        f"trap 'touch {ENGINE_SOCKET}/done' EXIT  # the engine container ends when the grader does",
        f"mkdir -p {SHARED}/tmp {SHARED}/bin",
        f'cp "$(command -v docker)" {SHARED}/bin/docker  # the CLI a host part\'s runner mounts, at a path dockerd sees',
        "waited=0",
        "until docker version >/dev/null 2>&1; do",
        f'  [ "$waited" -lt {ENGINE_WAIT} ] || {{ echo "labcoat: the engine did not answer within {ENGINE_WAIT} s" >&2;'
        f" exit {UNGRADABLE}; }}",
        "  waited=$((waited + 1)); sleep 1",
        "done",
        f"for archive in {IMAGES_DIR}/*.tar {IMAGES_DIR}/*.tar.gz; do",
        '  [ -e "$archive" ] || continue',
        '  docker load -q -i "$archive" || { echo "labcoat: docker load $archive failed" >&2; exit ' f"{UNGRADABLE}; }}",
        "done",
        f"for tag in {check}; do",
        '  docker image inspect "$tag" >/dev/null 2>&1 || {',
        f'    echo "labcoat: the engine has no $tag: put its archive in {IMAGES_DIR} (lab grade ... --emit k8s DIR'
        ' --k8s-save-images, then rebuild the grader image; docs/scale.md)" >&2',
        f"    exit {UNGRADABLE}; }}",
        "done",
        " ".join(grade),
    ])


def manifests(lab: Lab, *, n: int, jobs: int = 1, part_ids: list[str] | tuple[str, ...] = (), quiz: bool = True,
              seed: str | None = None, script_timeout: float = 60, grade_timeout: float = 900,
              name: str = APP, image: str = GRADER_IMAGE, engine_image: str = ENGINE_IMAGE,
              images: dict[str, str] | None = None, images_claim: str | None = None) -> dict[str, dict[str, Any]]:
    """File name -> Kubernetes object (a Job and a NetworkPolicy) for grading `lab` in `n` shards.

    `images`: id -> tag of the sandbox images the grader must find loaded (`lab_images`);
    `images_claim`: a PersistentVolumeClaim holding their archives, mounted at IMAGES_DIR
    instead of the grader image's own copy.
    """
    from labcoat.grading.capacity import DISK_FLOOR, MEMORY_FLOOR, cpu_cap, footprint

    # Every container of a submission's grading (its sandboxes, and a host part's runner and learner
    # containers) runs in the engine's container, so it is charged there.
    one = footprint(lab, part_ids)
    sandbox_disk = one.disk * jobs
    engine_memory = one.memory * jobs + MEMORY_FLOOR
    # One CPU per submission graded at a time (as measured: 2 CPUs, --jobs 2). The grader cannot see the
    # pod's share (it sees the node's CPUs), so each container's share of it is given as --cpus.
    engine_cpus = jobs
    per_container = cpu_cap(engine_cpus, jobs, one.containers)
    grade = ["lab", "grade", lab.id, "--batch", "/work/submissions", "--shard", f'"$((JOB_COMPLETION_INDEX + 1))/{n}"',
             "--out", '"/results/shard-$((JOB_COMPLETION_INDEX + 1))"', "--jobs", str(jobs),
             "--cpus", f"{per_container:g}",
             "--timeout", f"{script_timeout:g}", "--grade-timeout", f"{grade_timeout:g}", "--quiet"]
    grade += [arg for pid in part_ids for arg in ("--part", pid)]
    grade += [] if quiz else ["--no-quiz"]
    grade += ["--seed", shlex.quote(seed)] if seed else []
    script = _startup(grade, sorted((images or {}).values()))
    labels = {"app.kubernetes.io/name": name, "labcoat.lab": lab.id.replace(".", "-")}
    no_caps = {"allowPrivilegeEscalation": False, "privileged": False, "capabilities": {"drop": ["ALL"]}}
    shared = {"name": "shared", "mountPath": SHARED}  # the same path in both containers
    grader = {
        "name": "grader", "image": image, "command": ["bash", "-c", script],
        "env": [{"name": "DOCKER_HOST", "value": f"unix://{ENGINE_SOCKET}/docker.sock"},
                {"name": "LABCOAT_STATE", "value": "/tmp/labcoat-state"},
                {"name": "XDG_CACHE_HOME", "value": "/tmp/cache"},
                {"name": "HOME", "value": "/tmp"},
                # the policy proxy's socket (tempfile.mkdtemp) and the CLI: paths dockerd resolves too
                {"name": "TMPDIR", "value": f"{SHARED}/tmp"},
                {"name": "LABCOAT_DOCKER_CLI", "value": f"{SHARED}/bin/docker"},
                dict(HONOR_CAPS)],
        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
        "securityContext": {**no_caps, "readOnlyRootFilesystem": True, "runAsNonRoot": False},
        "volumeMounts": [{"name": "engine-socket", "mountPath": ENGINE_SOCKET},
                         dict(shared),
                         {"name": "submissions", "mountPath": "/work/submissions", "readOnly": True},
                         {"name": "results", "mountPath": "/results"},
                         {"name": "scratch", "mountPath": "/tmp"}],
    }
    if images_claim:
        grader["volumeMounts"].append({"name": "sandbox-images", "mountPath": IMAGES_DIR, "readOnly": True})
    engine = {
        "name": "engine", "image": engine_image, "env": [dict(HONOR_CAPS)],
        "command": ["sh", "-c", f"dockerd --host=unix://{ENGINE_SOCKET}/docker.sock --iptables=false --bridge=none & "
                    f"until [ -e {ENGINE_SOCKET}/done ]; do sleep 2; done; kill %1; wait"],
        "resources": {"requests": {"cpu": str(engine_cpus), "memory": _mib(engine_memory)},
                      "limits": {"memory": _mib(engine_memory), "ephemeral-storage": _mib(sandbox_disk + DISK_FLOOR)}},
        "securityContext": {"allowPrivilegeEscalation": False, "privileged": False,
                            "capabilities": {"drop": ["ALL"], "add": ENGINE_CAPS}},
        "volumeMounts": [{"name": "engine-socket", "mountPath": ENGINE_SOCKET},
                         dict(shared),
                         {"name": "engine-data", "mountPath": "/var/lib/docker"}],
    }
    job = {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "completionMode": "Indexed", "completions": n, "parallelism": min(n, 10), "backoffLimitPerIndex": 1,
            "maxFailedIndexes": n, "activeDeadlineSeconds": int(grade_timeout * 4 + 3600),
            "ttlSecondsAfterFinished": 86400,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never", "automountServiceAccountToken": False,
                    "enableServiceLinks": False, "runtimeClassName": RUNTIME_CLASS,
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [grader, engine],
                    "volumes": [
                        {"name": "engine-socket", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
                        {"name": "engine-data", "emptyDir": {"sizeLimit": _mib(sandbox_disk + (4 << 30))}},
                        {"name": "scratch", "emptyDir": {"sizeLimit": "256Mi"}},
                        {"name": "shared", "emptyDir": {"sizeLimit": "256Mi"}},
                        {"name": "submissions", "persistentVolumeClaim": {"claimName": f"{name}-submissions",
                                                                          "readOnly": True}},
                        {"name": "results", "persistentVolumeClaim": {"claimName": f"{name}-results"}},
                    ],
                },
            },
        },
    }
    if images_claim:
        job["spec"]["template"]["spec"]["volumes"].append(
            {"name": "sandbox-images", "persistentVolumeClaim": {"claimName": images_claim, "readOnly": True}})
    policy = {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": f"{name}-deny-all", "labels": labels},
        "spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/name": name}},
                 "policyTypes": ["Ingress", "Egress"], "ingress": [], "egress": []},
    }
    return {"job.yaml": job, "networkpolicy.yaml": policy}


def write_manifests(folder: Path, lab: Lab, **kwargs: Any) -> list[Path]:
    """Write the manifests into `folder`; the paths written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for file, obj in manifests(lab, **kwargs).items():
        path = folder / file
        path.write_text(f"# Generated by `lab grade {lab.id} --emit k8s` (docs/scale.md).\n"
                        + yaml.safe_dump(obj, sort_keys=False), encoding="utf-8")
        written.append(path)
    return written
