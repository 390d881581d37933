#!/bin/sh
# Make sure a Docker engine answers, installing and starting Debian's docker.io when needed,
# and that the offline image build's tools (debootstrap, gcc, static libc) are installed.
#
#   sudo scripts/ensure-docker.sh [--no-build-tools]
#
# Idempotent: when `docker info` answers and the build tools are present it does nothing
# (well under a second). Otherwise, as root on Debian/Ubuntu:
#   1. apt-get install docker.io when dockerd or the docker CLI is missing;
#   2. apt-get install debootstrap gcc libc6-dev when missing (unless --no-build-tools);
#   3. start the engine: `systemctl start docker` when systemd is PID 1, else run dockerd in
#      the background (log: /var/log/labcoat-dockerd.log) unless one is already starting;
#   4. wait up to 60 s (ENSURE_DOCKER_WAIT) for `docker info` to answer.
# Exit status: 0 the engine answers; 1 it does not (the reason is printed); 2 bad usage.
set -eu

WAIT=${ENSURE_DOCKER_WAIT:-60}
LOG=${ENSURE_DOCKER_LOG:-/var/log/labcoat-dockerd.log}
BUILD_TOOLS=1

for arg in "$@"; do
    case "$arg" in
        --no-build-tools) BUILD_TOOLS=0 ;;
        -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "ensure-docker: unknown argument: $arg (try --help)" >&2; exit 2 ;;
    esac
done

say() { echo "ensure-docker: $*" >&2; }
die() { say "$*"; exit 1; }

docker_answers() {
    command -v docker >/dev/null 2>&1 || return 1
    if command -v timeout >/dev/null 2>&1; then
        timeout 15 docker info >/dev/null 2>&1
    else
        docker info >/dev/null 2>&1
    fi
}

have_static_libc() {
    command -v gcc >/dev/null 2>&1 || return 1
    case "$(gcc -print-file-name=libc.a 2>/dev/null)" in
        /*) [ -e "$(gcc -print-file-name=libc.a)" ] ;;
        *) return 1 ;;
    esac
}

# Packages this run has to install (space separated).
missing_packages() {
    pkgs=""
    if ! command -v dockerd >/dev/null 2>&1 && [ ! -x /usr/sbin/dockerd ] && [ ! -x /usr/bin/dockerd ]; then
        pkgs="$pkgs docker.io"
    elif ! command -v docker >/dev/null 2>&1; then
        pkgs="$pkgs docker.io"
    fi
    if [ "$BUILD_TOOLS" = 1 ]; then
        command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || pkgs="$pkgs debootstrap"
        command -v gcc >/dev/null 2>&1 || pkgs="$pkgs gcc"
        have_static_libc || pkgs="$pkgs libc6-dev"
    fi
    echo "$pkgs"
}

dockerd_running() {
    if command -v pidof >/dev/null 2>&1; then
        pidof dockerd >/dev/null 2>&1
    else
        pgrep -x dockerd >/dev/null 2>&1
    fi
}

# The lines of dockerd's log that say why it stopped (its last lines are mostly noise).
show_log() {
    [ -f "$LOG" ] || return 0
    say "from $LOG:"
    { grep -E 'level=(error|fatal)|failed|Error' "$LOG" || tail -n 10 "$LOG"; } | tail -n 8 >&2
}

need_root() {
    [ "$(id -u)" = 0 ] || die "$1 needs root: run  sudo $0"
}

# ------------------------------------------------------------------ fast path
ANSWERS=0
STARTED=""
docker_answers && ANSWERS=1
PKGS=$(missing_packages)
if [ "$ANSWERS" = 1 ] && [ -z "$PKGS" ]; then
    exit 0
fi

# ------------------------------------------------------------------ install what is missing
if [ -n "$PKGS" ]; then
    need_root "installing$PKGS"
    command -v apt-get >/dev/null 2>&1 ||
        die "cannot install$PKGS: no apt-get here; install Docker Engine (https://docs.docker.com/engine/install/) and debootstrap with your package manager"
    say "installing$PKGS (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null || die "apt-get update failed: is the Debian mirror reachable? (see /etc/apt/sources.list*)"
    # shellcheck disable=SC2086 # word splitting of the package list is intended
    apt-get install -y -q --no-install-recommends $PKGS >/dev/null ||
        die "apt-get install$PKGS failed (run it by hand to see why)"
fi

if [ "$ANSWERS" = 1 ] || docker_answers; then
    exit 0
fi

# ------------------------------------------------------------------ start the engine
need_root "starting the Docker engine"
DOCKERD=$(command -v dockerd 2>/dev/null || echo /usr/sbin/dockerd)
[ -x "$DOCKERD" ] || die "dockerd is not installed and could not be installed"

if [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ] && command -v systemctl >/dev/null 2>&1; then
    say "starting docker with systemctl"
    systemctl start docker.service || die "systemctl start docker failed; see: journalctl -u docker --no-pager | tail -50"
elif dockerd_running; then
    say "dockerd is already running; waiting for it to answer"
else
    say "starting dockerd in the background (no init system manages it); log: $LOG"
    # A stale pid file from a killed dockerd makes the new one refuse to start.
    if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
        rm -f /var/run/docker.pid
    fi
    mkdir -p "$(dirname "$LOG")"
    : >"$LOG"
    if command -v setsid >/dev/null 2>&1; then
        setsid "$DOCKERD" >>"$LOG" 2>&1 </dev/null &
    else
        nohup "$DOCKERD" >>"$LOG" 2>&1 </dev/null &
    fi
    STARTED=$!
fi

i=0
while [ "$i" -lt "$WAIT" ]; do
    if docker_answers; then
        say "the Docker engine answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
        exit 0
    fi
    if [ -n "${STARTED:-}" ] && ! kill -0 "$STARTED" 2>/dev/null; then
        say "dockerd exited."
        show_log
        die "the Docker engine did not start (full log: $LOG)"
    fi
    sleep 1
    i=$((i + 1))
done
[ -n "${STARTED:-}" ] && show_log
die "the Docker engine did not answer within ${WAIT}s (docker info)"
