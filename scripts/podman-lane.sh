#!/usr/bin/env bash
# The second engine (issue #11): the sandbox lifecycle tests and one lab part's selftest on Podman.
#   bash scripts/podman-lane.sh            # after scripts/setup.sh; CI runs it after scripts/test.sh
# Installs Debian's podman and catatonit (podman's --init) when missing, moves the sandbox image over
# from Docker (no registry is reachable: podman never pulls), then runs with LABCOAT_BACKEND=podman.
# Exit status: pytest's, then the selftest's (0 only when both pass).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v podman >/dev/null || [ ! -x /usr/libexec/podman/catatonit ]; then
  echo "== installing podman and catatonit (Debian's packages)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman catatonit >/dev/null
fi
podman --version
bash scripts/ensure-docker.sh >/dev/null
# The images lab 5.3 uses, as the Docker suite built them for the current recipe (built now if missing);
# labcoat resolves labcoat/<id>:<hash> to podman's localhost/labcoat/<id>:<hash>.
tags=$(.venv/bin/python - <<'PY'
from labcoat.backends import get_backend
from labcoat.content.catalog import Catalog
catalog, docker = Catalog.load(), get_backend("docker")
lab = catalog.lab("5.3")
for image_id in sorted({s.image for s in [lab.sandbox, *(p.sandbox for p in lab.parts)] if s is not None}):
    print(docker.ensure_image(image_id, catalog.image(image_id), catalog.image_dir(image_id)))
PY
)
echo "== moving $(echo $tags) to podman"
docker save $tags | podman load -q
export LABCOAT_BACKEND=podman LAB_REQUIRE_DOCKER=1
export LABCOAT_STATE="${LABCOAT_STATE:-$(mktemp -d /tmp/labcoat-podman.XXXXXX)}"
.venv/bin/python -m pytest -q -p no:randomly tests/integration/test_lifecycle.py
.venv/bin/lab selftest 5.3 --part "${LABCOAT_PODMAN_PART:-part3}"
