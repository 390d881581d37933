"""The registry build: `docker build` of the image folder's Dockerfile with SUITE and PACKAGES as build args."""

from __future__ import annotations

import re
from collections import deque
from pathlib import Path
from typing import Any

from labcoat.backends.images.engine import _call, _publish, _remove_image_quietly, verify_image
from labcoat.backends.images.recipe import LABEL_IMAGE, LABEL_RECIPE, _Reporter, repository
from labcoat.content.models import Image
from labcoat.errors import EnvironmentProblem

# ----------------------------------------------------------------------------- Dockerfile path


def _build_dockerfile(
    client: Any, image: Image, image_dir: Path, tag: str, say: _Reporter, why_not_debootstrap: str | None
) -> None:
    from docker.errors import APIError, BuildError

    recipe = tag.rpartition(":")[2]
    temp_tag = f"{repository(image.id)}:building-{recipe}"
    say(f"building {tag} from {image.dockerfile} (needs a registry for debian:{image.suite})", 0.0)
    say.stage(0.0, 0.9)
    buildargs = {"SUITE": image.suite, "PACKAGES": " ".join(image.packages)}
    labels = {LABEL_RECIPE: recipe, LABEL_IMAGE: image.id}
    error: str | None = None
    log: deque[str] = deque(maxlen=20)
    try:
        stream = _call(
            lambda: client.api.build(
                path=str(image_dir),
                dockerfile=image.dockerfile,
                tag=temp_tag,
                buildargs=buildargs,
                labels=labels,
                rm=True,
                forcerm=True,
                decode=True,
            )
        )
        for chunk in stream:
            if "error" in chunk:
                error = str(chunk.get("error")).strip()
                break
            text = str(chunk.get("stream", "")).strip()
            if not text:
                continue
            log.append(text)
            m = re.match(r"^Step (\d+)/(\d+) : (.*)", text)
            if m:
                step, total = int(m.group(1)), int(m.group(2))
                say(f"docker build step {step}/{total}: {m.group(3)[:60]}", (step - 1) / total)
    except (APIError, BuildError) as exc:
        error = str(exc)
    except BaseException:
        _remove_image_quietly(client, temp_tag)
        raise
    if error is not None:
        _remove_image_quietly(client, temp_tag)
        hint = (
            "pulling debian:" + image.suite + " needs a reachable registry (docker pull); "
            "offline, build with debootstrap as root: LABCOAT_IMAGE_METHOD=debootstrap"
        )
        if why_not_debootstrap:
            hint += f"; debootstrap was not used because: {why_not_debootstrap}"
        raise EnvironmentProblem(f"docker build of {image.dockerfile} failed: {error}", hint=hint)
    say.stage(0.9, 1.0)
    say("checking the required commands in a throwaway container", 0.0)
    try:
        verify_image(client, temp_tag, image)
        _publish(client, temp_tag, tag)
    except BaseException:
        _remove_image_quietly(client, temp_tag)
        raise
