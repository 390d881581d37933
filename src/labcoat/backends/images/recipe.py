"""An image's recipe: its tag (a hash of the recipe folder), its labels, and the progress reporter of a build."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from labcoat.content.models import Image
from labcoat.errors import ContentError

Progress = Callable[[str, float | None], None]

METHODS = ("auto", "debootstrap", "dockerfile")
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LABEL_RECIPE = "labcoat.recipe"
LABEL_IMAGE = "labcoat.image"

DOCKER_HINT = "start the Docker engine: scripts/ensure-docker.sh (installs and starts it when missing)"
REGISTRY_HINT = (
    "or, where a registry is reachable, build from the Dockerfile: LABCOAT_IMAGE_METHOD=dockerfile"
)


# ----------------------------------------------------------------------------- naming


def recipe_hash(image_dir: Path) -> str:
    """First 12 hex digits of a sha256 over every file in the folder: relative path and bytes, sorted."""
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise ContentError("image folder does not exist", path=str(image_dir))
    files = sorted(
        (p for p in image_dir.rglob("*") if p.is_file()),
        key=lambda p: p.relative_to(image_dir).as_posix(),
    )
    digest = hashlib.sha256()
    for path in files:
        rel = path.relative_to(image_dir).as_posix().encode()
        data = path.read_bytes()
        # Length-prefixed, so no two different folders can feed the same byte stream.
        digest.update(b"%d:%s\0%d:" % (len(rel), rel, len(data)))
        digest.update(data)
    return digest.hexdigest()[:12]


def repository(image_id: str) -> str:
    """`labcoat/<id>`: Docker repository names must be lower case."""
    return f"labcoat/{image_id.lower()}"


def image_tag(image: Image, image_dir: Path) -> str:
    """`labcoat/<id>:<recipe hash>`, the tag `ensure_image` returns."""
    return f"{repository(image.id)}:{recipe_hash(image_dir)}"


# ----------------------------------------------------------------------------- progress


class _Reporter:
    """Maps a stage's own 0..1 onto the overall fraction; never goes backwards."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.lo, self.hi = 0.0, 1.0
        self.last = 0.0

    def stage(self, lo: float, hi: float) -> None:
        self.lo, self.hi = lo, hi

    def __call__(self, message: str, fraction: float | None = None) -> None:
        if self.progress is None:
            return
        overall = None
        if fraction is not None:
            overall = self.lo + (self.hi - self.lo) * min(max(fraction, 0.0), 1.0)
            overall = max(overall, self.last)
            self.last = overall
        self.progress(message, overall)
