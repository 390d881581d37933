#!/usr/bin/env bash
# Set up labcoat on this machine and start the Memory Management lab.
#   bash scripts/setup.sh             # Docker engine (installed/started if none answers), venv, package, `lab start 5.3`
#   bash scripts/setup.sh --no-start  # everything but starting the lab (CI uses this)
# Idempotent: a second run only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
start=1
[ "${1:-}" = "--no-start" ] && start=0

# Also installs gcc and libc6-dev (static libc) from Debian when missing (apt-get, as root): the
# offline image build compiles images/sandbox's hog with them, and `lab export killercoda` compiles
# hog with `gcc -static` for the Killercoda VM (its tests fail, not skip, under CI without gcc).
bash scripts/ensure-docker.sh

if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  python3 -m venv .venv
fi
echo "== installing labcoat into .venv"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]' 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/lab --version

if [ "$start" = 1 ]; then
  echo "== starting lab 5.3 (the first start builds the sandbox image offline: about a minute)"
  .venv/bin/lab start 5.3
  echo
  echo "Next: .venv/bin/lab show part1   (or activate the venv: . .venv/bin/activate)"
fi
