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
  and may not escalate.

The pod gets no service-account token, and a NetworkPolicy denies all ingress and egress
for the grading pods (the sandboxes get no network anyway).
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from labcoat.content.models import Lab

APP = "labcoat-grade"
GRADER_IMAGE = "ghcr.io/our-course/labcoat-grader:latest"  # built from this repository: docs/scale.md
ENGINE_IMAGE = "docker:27-dind"
RUNTIME_CLASS = "sysbox-runc"
# dockerd in a user namespace (Sysbox): what it needs to create containers, namespaced to the pod.
ENGINE_CAPS = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_ADMIN", "NET_BIND_SERVICE",
               "SETGID", "SETPCAP", "SETUID", "SYS_ADMIN", "SYS_CHROOT", "SYS_PTRACE", "SYS_RESOURCE"]


def _mib(n: int) -> str:
    return f"{max(1, -(-n // (1 << 20)))}Mi"


def manifests(lab: Lab, *, n: int, jobs: int = 1, part_ids: list[str] | tuple[str, ...] = (), quiz: bool = True,
              seed: str | None = None, script_timeout: float = 60, grade_timeout: float = 900,
              name: str = APP) -> dict[str, dict[str, Any]]:
    """File name -> Kubernetes object (a Job and a NetworkPolicy) for grading `lab` in `n` shards."""
    from labcoat.grading.capacity import DISK_FLOOR, MEMORY_FLOOR, lab_sandboxes

    boxes = lab_sandboxes(lab, part_ids)
    sandbox_memory = sum(b.memory_bytes + b.swap_bytes for b in boxes) * jobs
    sandbox_disk = sum(b.disk_bytes for b in boxes) * jobs
    engine_memory = sandbox_memory + MEMORY_FLOOR  # the sandboxes are charged to the engine's container
    grade = ["lab", "grade", lab.id, "--batch", "/work/submissions", "--shard", f'"$((JOB_COMPLETION_INDEX + 1))/{n}"',
             "--out", '"/results/shard-$((JOB_COMPLETION_INDEX + 1))"', "--jobs", str(jobs),
             "--timeout", f"{script_timeout:g}", "--grade-timeout", f"{grade_timeout:g}", "--quiet"]
    grade += [arg for pid in part_ids for arg in ("--part", pid)]
    grade += [] if quiz else ["--no-quiz"]
    grade += ["--seed", shlex.quote(seed)] if seed else []
    script = ("until docker version >/dev/null 2>&1; do sleep 1; done; " + " ".join(grade)
              + "; status=$?; touch /run/engine/done; exit $status")
    labels = {"app.kubernetes.io/name": name, "labcoat.lab": lab.id.replace(".", "-")}
    no_caps = {"allowPrivilegeEscalation": False, "privileged": False, "capabilities": {"drop": ["ALL"]}}
    grader = {
        "name": "grader", "image": GRADER_IMAGE, "command": ["bash", "-c", script],
        "env": [{"name": "DOCKER_HOST", "value": "unix:///run/engine/docker.sock"},
                {"name": "LABCOAT_STATE", "value": "/tmp/labcoat-state"}],
        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
        "securityContext": {**no_caps, "readOnlyRootFilesystem": True, "runAsNonRoot": False},
        "volumeMounts": [{"name": "engine-socket", "mountPath": "/run/engine"},
                         {"name": "submissions", "mountPath": "/work/submissions", "readOnly": True},
                         {"name": "results", "mountPath": "/results"},
                         {"name": "scratch", "mountPath": "/tmp"}],
    }
    engine = {
        "name": "engine", "image": ENGINE_IMAGE,
        "command": ["sh", "-c", "dockerd --host=unix:///run/engine/docker.sock --iptables=false --bridge=none & "
                    "until [ -e /run/engine/done ]; do sleep 2; done; kill %1; wait"],
        "resources": {"requests": {"cpu": "1", "memory": _mib(engine_memory)},
                      "limits": {"memory": _mib(engine_memory), "ephemeral-storage": _mib(sandbox_disk + DISK_FLOOR)}},
        "securityContext": {"allowPrivilegeEscalation": False, "privileged": False,
                            "capabilities": {"drop": ["ALL"], "add": ENGINE_CAPS}},
        "volumeMounts": [{"name": "engine-socket", "mountPath": "/run/engine"},
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
                        {"name": "submissions", "persistentVolumeClaim": {"claimName": f"{name}-submissions",
                                                                          "readOnly": True}},
                        {"name": "results", "persistentVolumeClaim": {"claimName": f"{name}-results"}},
                    ],
                },
            },
        },
    }
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
