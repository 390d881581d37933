"""`ensure_image`: the tag of an image, built first when Docker does not have it, by the chosen method."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from labcoat.backends.images.debootstrap import _build_debootstrap, _debootstrap_problem
from labcoat.backends.images.dockerfile import _build_dockerfile
from labcoat.backends.images.engine import _image_exists, _image_id, prune_old
from labcoat.backends.images.recipe import METHODS, Progress, _Reporter, image_tag
from labcoat.backends.images.workdir import _build_lock, _remove_stale_workdirs
from labcoat.content.models import Image
from labcoat.errors import ContentError, UsageProblem

# ----------------------------------------------------------------------------- public API


def ensure_image(
    client: Any,
    image: Image,
    image_dir: Path,
    *,
    progress: Progress | None = None,
    method: str = "auto",
    force: bool = False,
    fresh_rootfs: bool = False,
    prune: bool = True,
) -> str:
    """The tag of `image`, built first when Docker does not have it (one API call when it does).

    method: "auto" (LABCOAT_IMAGE_METHOD, else debootstrap when usable, else the Dockerfile),
    "debootstrap" or "dockerfile". force: rebuild even when the tag exists. fresh_rootfs: with
    a debootstrap build, ignore the cached root filesystem (new package versions from the mirror).
    prune: after a build, remove older `labcoat/<id>:*` tags that no container uses.
    """
    image_dir = Path(image_dir)
    tag = image_tag(image, image_dir)
    if not force and _image_exists(client, tag):
        return tag

    say = _Reporter(progress)
    chosen, why_not_debootstrap = _choose_method(method, image, fresh_rootfs=fresh_rootfs)
    with _build_lock(say):
        # Someone else may have built it while we waited for the lock.
        if not force and _image_exists(client, tag):
            return tag
        previous = _image_id(client, tag) if force else None
        _remove_stale_workdirs()
        if chosen == "debootstrap":
            _build_debootstrap(client, image, image_dir, tag, say, fresh_rootfs=fresh_rootfs)
        else:
            _build_dockerfile(client, image, image_dir, tag, say, why_not_debootstrap)
    if previous and previous != _image_id(client, tag):
        # A forced rebuild leaves the old image untagged; drop it unless a container uses it.
        with contextlib.suppress(Exception):
            client.api.remove_image(previous)
    if prune:
        with contextlib.suppress(Exception):
            prune_old(client, image.id, keep=tag)
    say("image ready: " + tag, 1.0)
    return tag


# ----------------------------------------------------------------------------- method choice


def _choose_method(method: str, image: Image, *, fresh_rootfs: bool = False) -> tuple[str, str | None]:
    """(method to use, why debootstrap was not usable when "auto" fell back to the Dockerfile)."""
    chosen = method
    if chosen == "auto":
        chosen = os.environ.get("LABCOAT_IMAGE_METHOD", "").strip().lower() or "auto"
    if chosen not in METHODS:
        raise UsageProblem(f"unknown image build method {chosen!r}. Valid methods: {', '.join(METHODS)}.")
    if chosen == "dockerfile" and not image.dockerfile:
        raise ContentError(
            "this image has no Dockerfile",
            path=f"images/{image.id}/image.yaml",
            hint="add 'dockerfile: Dockerfile'",
        )
    if chosen != "auto":
        return chosen, None
    problem = _debootstrap_problem(image, fresh_rootfs=fresh_rootfs)
    if problem is None:
        return "debootstrap", None
    if not image.dockerfile:
        raise problem
    return "dockerfile", f"{problem.message} ({problem.hint})" if problem.hint else problem.message
