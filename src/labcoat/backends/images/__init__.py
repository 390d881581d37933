"""Sandbox images: tagged by a hash of their recipe folder, built offline when missing.

An image folder (`images/<id>/`) holds `image.yaml`, the C sources it compiles and a
Dockerfile. Its tag is `labcoat/<id>:<recipe_hash>`, so an edited recipe gets a new
tag and an unchanged one is found with a single API call (`ensure_image`, the hot path
of `lab start`).

Two ways to build:

* ``debootstrap`` (what "auto" picks when it can; needs root, debootstrap and gcc, and
  no registry, only the Debian mirror): debootstrap the suite with the image's packages,
  trim it, and cache that root filesystem as a tarball keyed by (suite, packages, arch).
  Then compile the C programs statically on the host, add them to a copy of the tarball
  and `docker import` it with CMD/ENV/WORKDIR/LABEL changes. A change to hog.c only
  recompiles and re-imports (seconds); a change to the package list re-runs debootstrap.
* ``dockerfile``: `docker build` of the folder's Dockerfile with SUITE and PACKAGES from
  image.yaml as build args (needs a registry for `debian:<suite>`).

`LABCOAT_IMAGE_METHOD` (auto | debootstrap | dockerfile) overrides method="auto";
`LABCOAT_DEBIAN_MIRROR` overrides the mirror read from the host's apt sources.
Every new image is first checked: each `requires_commands` entry must exist in it.
"""

from __future__ import annotations

from labcoat.backends.images.apt import DEFAULT_MIRROR, debian_mirror
from labcoat.backends.images.build import ensure_image
from labcoat.backends.images.debootstrap import (
    ROOTFS_FORMAT,
    ROOTFS_KEEP,
    rootfs_cache_key,
    rootfs_cache_path,
)
from labcoat.backends.images.engine import prune_old, verify_image
from labcoat.backends.images.recipe import (
    CONTAINER_PATH,
    DOCKER_HINT,
    LABEL_IMAGE,
    LABEL_RECIPE,
    METHODS,
    REGISTRY_HINT,
    Progress,
    image_tag,
    recipe_hash,
    repository,
)

__all__ = [
    "CONTAINER_PATH", "DEFAULT_MIRROR", "DOCKER_HINT", "LABEL_IMAGE", "LABEL_RECIPE", "METHODS", "REGISTRY_HINT",
    "ROOTFS_FORMAT", "ROOTFS_KEEP", "Progress", "debian_mirror", "ensure_image", "image_tag", "prune_old",
    "recipe_hash", "repository", "rootfs_cache_key", "rootfs_cache_path", "verify_image",
]
