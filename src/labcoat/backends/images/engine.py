"""Docker image calls of a build: existence, publishing under the final tag, pruning old tags, `docker import`,
and the check that every `requires_commands` entry exists in a new image."""

from __future__ import annotations

import contextlib
import json
import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labcoat.backends.images.recipe import CONTAINER_PATH, DOCKER_HINT, LABEL_IMAGE, LABEL_RECIPE, repository
from labcoat.content.models import Image
from labcoat.errors import ContentError, EnvironmentProblem


def prune_old(client: Any, image_id: str, keep: str | None = None) -> list[str]:
    """Remove `labcoat/<id>:*` tags other than `keep`; tags still used by a container are kept."""
    from docker.errors import APIError, NotFound

    repo = repository(image_id)
    removed = []
    for img in _call(lambda: client.images.list(name=repo)):
        for tag in img.tags:
            if not tag.startswith(repo + ":") or tag == keep:
                continue
            try:
                client.api.remove_image(tag)
                removed.append(tag)
            except NotFound:
                pass
            except APIError as exc:
                if exc.status_code != 409:  # 409: a container still uses it
                    raise
    return removed


# ----------------------------------------------------------------------------- Docker helpers


def _call(fn: Callable[[], Any]) -> Any:
    """Run one Docker API call; an engine that does not answer becomes EnvironmentProblem."""
    from requests.exceptions import ConnectionError as RequestsConnectionError

    try:
        return fn()
    except RequestsConnectionError as exc:
        reason = str(exc).split("(")[0].strip() or type(exc).__name__
        raise EnvironmentProblem(f"cannot reach the Docker engine ({reason})", hint=DOCKER_HINT) from None


def _image_exists(client: Any, tag: str) -> bool:
    return _image_id(client, tag) is not None


def _image_id(client: Any, ref: str) -> str | None:
    """The image id `ref` names, or None when Docker has no such image (one API call)."""
    from docker.errors import ImageNotFound

    try:
        attrs = _call(lambda: client.api.inspect_image(ref))
    except ImageNotFound:
        return None
    return str(attrs.get("Id", "")) or ref


def _remove_image_quietly(client: Any, ref: str) -> None:
    with contextlib.suppress(Exception):
        client.api.remove_image(ref, force=True)


def _publish(client: Any, temp_tag: str, tag: str) -> None:
    """Give the verified image its real tag and drop the temporary one (the tag appears atomically)."""
    repo, _, name = tag.rpartition(":")
    _call(lambda: client.api.tag(temp_tag, repo, name, force=True))
    with contextlib.suppress(Exception):
        client.api.remove_image(temp_tag, noprune=True)


def verify_image(client: Any, ref: str, image: Image) -> None:
    """Run a throwaway container (no network) and check every required command is in it."""
    from docker.errors import APIError, ContainerError

    commands = list(dict.fromkeys(image.requires_commands))
    dests = [spec.dest for spec in (*image.compile, *image.install)]
    script = (
        'missing=""; for c in "$@"; do command -v "$c" >/dev/null 2>&1 || missing="$missing $c"; done; '
        + "".join(f'[ -x {shlex.quote(d)} ] || missing="$missing {shlex.quote(d)}"; ' for d in dests)
        + 'echo "labcoat-missing:$missing"'
    )
    try:
        out = _call(
            lambda: client.containers.run(
                ref,
                ["/bin/sh", "-c", script, "sh", *commands],
                remove=True,
                network_mode="none",
                stdout=True,
                stderr=True,
                mem_limit="64m",
                memswap_limit="64m",
            )
        )
    except (ContainerError, APIError) as exc:
        raise EnvironmentProblem(
            f"the new image {ref} does not run a shell: {exc}",
            hint="the image needs /bin/sh; check the build log above",
        ) from None
    text = out.decode(errors="replace") if isinstance(out, bytes) else str(out)
    match = re.search(r"labcoat-missing:(.*)", text)
    if match is None:
        raise EnvironmentProblem(
            f"could not check the commands in {ref}; its output was: {text.strip()[:300]}"
        )
    missing = match.group(1).split()
    if missing:
        raise ContentError(
            f"the built image lacks required command(s): {', '.join(missing)}",
            path=f"images/{image.id}/image.yaml",
            hint="add the Debian package that provides each one to 'packages:' (or a 'compile:' entry)",
        )


def _import(client: Any, tar_path: Path, temp_tag: str, image: Image, recipe: str) -> None:
    """`docker import` through the API, with the image config the sandboxes expect."""
    from docker.errors import APIError

    repo, _, name = temp_tag.rpartition(":")
    changes = [
        'CMD ["sleep", "infinity"]',
        f"ENV PATH={CONTAINER_PATH}",
        "WORKDIR /root",
        f"LABEL {LABEL_RECIPE}={recipe} {LABEL_IMAGE}={image.id}",
    ]
    try:
        out = _call(
            lambda: client.api.import_image(src=str(tar_path), repository=repo, tag=name, changes=changes)
        )
    except APIError as exc:
        raise EnvironmentProblem(f"docker import failed: {exc.explanation or exc}") from None
    for line in str(out).splitlines():
        with contextlib.suppress(ValueError):
            msg = json.loads(line)
            if isinstance(msg, dict) and msg.get("error"):
                raise EnvironmentProblem(f"docker import failed: {msg['error']}")
