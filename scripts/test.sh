#!/usr/bin/env bash
# Run the whole test suite: unit tests (no Docker) and Docker tests on real sandboxes.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/unit -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-docker.sh >/dev/null
exec .venv/bin/python -m pytest "$@"
