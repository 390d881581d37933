#!/usr/bin/env bash
# labcoat's proving ground: run the lab on cgroup v2 hosts, in a Debian VM under qemu.
#
#   bash scripts/vm.sh test [--lane NAME]... [--steps A,B] [--timeout S] [--keep]
#   bash scripts/vm.sh build          build (or find) the cached base image
#   bash scripts/vm.sh shell          boot an interactive root shell (cgroup v2, Docker, swap)
#   bash scripts/vm.sh probe          boot a minimal guest under KVM, then TCG, and say which came up
#   bash scripts/vm.sh clean          remove the cache (images, run folders)
#   bash scripts/vm.sh lanes          list the lanes
#
# Lanes (scripts/vm/recipe.py): v2-cgroupfs (Docker's cgroupfs driver, 1 GiB swap, swap
# accounting), v2-systemd (systemd init, Docker's systemd driver), v2-local (local backend).
# Default: all three, one after the other (one VM at a time). Not by default: v2-killercoda
# (the Killercoda export played on the VM: docs/killercoda.md), v2-podman (Podman as the engine:
# the lifecycle tests and `lab selftest` with LABCOAT_BACKEND=podman, no dockerd).
# Steps: env doctor start selftest grade scen-NAME, or the group `scenarios`, or `all` (default).
# Environment: LABCOAT_VM_ACCEL=kvm|tcg, LABCOAT_VM_TIME_SCALE (default 6 under TCG, 1 under KVM),
# LABCOAT_VM_SELFTEST_ARGS (e.g. "--part part2"), LABCOAT_VM_MEMORY (MiB), LABCOAT_VM_CPUS.
#
# The base image is built from Debian's packages only (debootstrap, the Debian kernel's modules,
# a venv with labcoat's dependencies from a wheelhouse built here, `mkfs.ext4 -d`: no loop mount)
# and cached in $LABCOAT_VM_CACHE (default /var/cache/labcoat-vm) under a key hashed from its
# recipe files and the kernel version: an edited recipe is a new image, never a stale one.
# Each run boots a copy-on-write overlay of it, with a payload disk holding a wheel of this
# working tree, the sandbox images (`docker save`), the reference submission and the guest
# scripts. qemu uses KVM when a probe boot shows it works here, else TCG (-accel tcg,thread=multi
# -cpu max); force with LABCOAT_VM_ACCEL=kvm|tcg. Output streams as it comes; results are read
# back from the payload disk with debugfs after poweroff; a table lane x step ends the run.
# Exit: 0 every step of every lane passed; 1 a step failed or a lane did not finish; 2 usage.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VM=$ROOT/scripts/vm
CACHE=${LABCOAT_VM_CACHE:-/var/cache/labcoat-vm}
LAB=${LABCOAT_VM_LAB:-5.3}
MEM=${LABCOAT_VM_MEMORY:-4096}
SMP=${LABCOAT_VM_CPUS:-2}

usage() { sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
log() { echo "vm: $*" >&2; }

cmd=${1:-}
[ -n "$cmd" ] || usage 2
shift
lanes=() steps=all timeout=${LABCOAT_VM_TIMEOUT:-5400} keep=0
while [ $# -gt 0 ]; do
  case $1 in
    --lane) lanes+=(${2//,/ }); shift 2 ;;
    --lane=*) lanes+=(${1#--lane=}); shift ;;
    --steps) steps=${2//,/ }; shift 2 ;;
    --steps=*) steps=${1#--steps=}; steps=${steps//,/ }; shift ;;
    --timeout) timeout=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) usage 0 ;;
    *) echo "vm.sh: unknown argument $1" >&2; usage 2 ;;
  esac
done

# --- host tools ------------------------------------------------------------------------------
ensure_host() {
  local missing=()
  command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
  command -v qemu-img >/dev/null || missing+=(qemu-utils)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v mkfs.ext4 >/dev/null && command -v debugfs >/dev/null || missing+=(e2fsprogs)
  ls /boot/vmlinuz-*-amd64 >/dev/null 2>&1 || missing+=(linux-image-amd64)
  if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || { log "needs root to install ${missing[*]} (and to build the image)"; exit 2; }
    log "installing ${missing[*]} (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  [ "$(id -u)" = 0 ] || { log "needs root (debootstrap, chroot)"; exit 2; }
  [ -x "$ROOT/.venv/bin/python" ] || { log "no .venv: running scripts/setup.sh --no-start"; bash "$ROOT/scripts/setup.sh" --no-start; }
  KVER=$(ls /boot/vmlinuz-*-amd64 | sed 's|.*/vmlinuz-||' | sort -V | tail -1)
  VMLINUZ=/boot/vmlinuz-$KVER INITRD=/boot/initrd.img-$KVER
  [ -d "/lib/modules/$KVER" ] && [ -f "$INITRD" ] || { log "kernel $KVER is incomplete (modules or initrd missing)"; exit 1; }
}

# --- the base image --------------------------------------------------------------------------
build_image() {
  KEY=$(python3 "$VM/recipe.py" image-key "$ROOT" "$KVER")
  IMAGE=$CACHE/images/$KEY/disk.img
  if [ -f "$CACHE/images/$KEY/ready" ]; then
    log "base image $KEY (cached)"
    return
  fi
  local t0=$SECONDS wheels=$CACHE/images/$KEY/wheels
  log "building base image $KEY (Debian bookworm, kernel $KVER): a few minutes"
  rm -rf "$CACHE/images/$KEY"; mkdir -p "$wheels"
  "$ROOT/.venv/bin/python" -m pip wheel -q --disable-pip-version-check -w "$wheels" "$ROOT" 2>&1 | grep -v '^WARNING: Location' || true
  ls "$wheels"/labcoat-*.whl >/dev/null || { log "could not build the wheelhouse"; exit 1; }
  bash "$VM/build-image.sh" "$IMAGE" "$KVER" "$CACHE/debs" "$wheels"
  rm -rf "$wheels"
  # older images are stale for this recipe: keep only this one
  find "$CACHE/images" -mindepth 1 -maxdepth 1 -type d ! -name "$KEY" -exec rm -rf {} +
  date -u +%FT%TZ > "$CACHE/images/$KEY/ready"
  log "base image $KEY built in $((SECONDS - t0)) s"
}

# --- a run's payload disk ----------------------------------------------------------------------
IMAGES_TAR=""
save_images() {  # the sandbox images built on this host, saved once per run of vm.sh
  [ -n "$IMAGES_TAR" ] && return
  bash "$ROOT/scripts/ensure-docker.sh" >/dev/null
  local tags
  tags=$(LAB="$LAB" "$ROOT/.venv/bin/python" - <<'PY'
import os

import docker
from labcoat.content.catalog import Catalog
from labcoat.backends.images import ensure_image, repository
client, catalog = docker.from_env(), Catalog.load()
lab = catalog.lab(os.environ["LAB"])
specs = [lab.sandbox, *(p.sandbox for p in lab.parts), *(s.sandbox for s in catalog.scenarios.values())]
for image_id in sorted({spec.image for spec in specs if spec is not None}):  # only what the lab and the scenarios use
    tag = str(ensure_image(client, catalog.image(image_id), catalog.image_dir(image_id)))
    client.api.tag(tag, repository(image_id), "latest", force=True)
    print(tag, f"{repository(image_id)}:latest")
PY
)
  IMAGES_TAR=$WORK/images.tar
  log "saving sandbox images: $(echo $tags)"
  docker save -o "$IMAGES_TAR" $tags
}

make_payload() {  # make_payload LANE DIR
  local lane=$1 dir=$2 p=$2/payload
  mkdir -p "$p/results" "$p/reference"
  cp "$VM/guest-init" "$VM/run-lane.sh" "$VM/scenario_summary.py" "$p/"
  echo "$LAB" > "$p/lab"
  echo "$steps" > "$p/steps"
  # limits (never verdicts) stretched on an emulated CPU: LABCOAT_TIME_SCALE in the guest
  echo "${LABCOAT_VM_TIME_SCALE:-$([ "$ACCEL" = kvm ] && echo 1 || echo 6)}" > "$p/time-scale"
  echo "${LABCOAT_VM_SELFTEST_ARGS:-}" > "$p/selftest-args"
  cp "$WORK/wheel"/labcoat-*.whl "$p/"
  mkdir -p "$p/src"  # the tests that need a real cgroup v2 host (they skip elsewhere)
  cp -r "$ROOT/tests" "$ROOT/pyproject.toml" "$p/src/"
  find "$p/src" -name __pycache__ -prune -exec rm -rf {} +
  cp "$ROOT/labs/$LAB/solutions/"*.sh "$p/reference/"
  [ -f "$ROOT/tests/unit/quiz/answers/$LAB-all-correct.yaml" ] && cp "$ROOT/tests/unit/quiz/answers/$LAB-all-correct.yaml" "$p/reference/quiz.yaml"
  if [ "$lane" = v2-local ]; then  # the local backend runs the image's own tools on the host (as a Killercoda export ships them)
    local c; c=$(docker create --label labcoat.owner=vm-sh "$(docker images -q labcoat/sandbox:latest | head -1)")
    mkdir -p "$p/bin"; docker cp "$c:/usr/local/bin/hog" "$p/bin/"; docker cp "$c:/usr/local/bin/answer" "$p/bin/"; docker rm "$c" >/dev/null
  fi
  [ "$lane" = v2-killercoda ] && kc_export "$p"  # issue 13 (kc): the lane's own block, below
  if [ "$lane" = v2-podman ]; then  # test_lifecycle.py loads the content catalog of its checkout
    cp -r "$ROOT/labs" "$ROOT/scenarios" "$ROOT/images" "$ROOT/checks" "$ROOT/quizzes" "$ROOT/schemas" "$p/src/"
  fi
  if [ "$LANE_IMAGES" = 1 ] && [ "$lane" != v2-killercoda ]; then save_images; ln "$IMAGES_TAR" "$p/images.tar" 2>/dev/null || cp "$IMAGES_TAR" "$p/images.tar"; fi
  local mb=$(( $(du -sm "$p" | cut -f1) + 512 ))
  truncate -s "${mb}M" "$dir/payload.img"
  mkfs.ext4 -q -F -L payload -d "$p" "$dir/payload.img"
  rm -rf "$p"
}

# --- the v2-killercoda lane (issue 13, Killercoda export) ---------------------------------------
# A Killercoda-shaped VM: cgroup v2, root, Docker running but EMPTY (no images.tar: the export
# must bring labcoat's image itself), no network. The payload carries `lab export killercoda LAB`
# made here from a WHEEL install (a fresh venv with this tree's wheel, no checkout on its path;
# dependencies through a .pth, as tests/integration/test_killercoda_wheel.py does), for the guest's
# Python (3.11); the guest plays it with `lab killercoda run --solutions --on-this-machine`.
# LABCOAT_VM_KC_CONTENT=DIR exports that content folder instead of the wheel's own.
kc_export() {  # kc_export PAYLOAD_DIR
  local venv=$WORK/kc-venv site t0=$SECONDS
  if [ ! -x "$venv/bin/lab" ]; then
    "$ROOT/.venv/bin/python" -m venv "$venv"
    site=$("$venv/bin/python" -c "import sysconfig; print(sysconfig.get_path('purelib'))")
    "$ROOT/.venv/bin/python" -c "import sysconfig; print(sysconfig.get_path('purelib'))" > "$site/deps.pth"
    "$venv/bin/python" -m pip install -q --no-deps --no-index --disable-pip-version-check "$WORK/wheel"/labcoat-*.whl
  fi
  bash "$ROOT/scripts/ensure-docker.sh" >/dev/null
  # LABCOAT_VM_KC_CONTENT: a content folder to export instead of the one in the wheel
  (cd "$WORK" && env -u LABCOAT_CONTENT -u PYTHONPATH "$venv/bin/lab" ${LABCOAT_VM_KC_CONTENT:+--content "$LABCOAT_VM_KC_CONTENT"} \
     export killercoda "$LAB" "$1/kc-export" --python 3.11 --json > "$WORK/kc-export.json") \
    || { log "lab export killercoda $LAB failed"; exit 1; }
  log "v2-killercoda: exported $LAB from a wheel install in $((SECONDS - t0)) s ($(du -sh "$1/kc-export" | cut -f1))"
}

# --- qemu ------------------------------------------------------------------------------------
QPID="" TPID=""
stop_vm() {
  [ -n "$TPID" ] && kill "$TPID" 2>/dev/null; TPID=""
  if [ -n "$QPID" ] && kill -0 "$QPID" 2>/dev/null; then
    kill "$QPID" 2>/dev/null; sleep 1; kill -9 "$QPID" 2>/dev/null || true
  fi
  QPID=""
}
cleanup() {
  stop_vm
  [ -n "${WORK:-}" ] && [ "$keep" = 0 ] && rm -rf "$WORK"
  return 0
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT TERM

boot() {  # boot DIR ACCEL TIMEOUT STREAM(0|1): run qemu until poweroff or the timeout; 0 finished, 124 timeout
  local dir=$1 accel=$2 limit=$3 stream=$4 accel_args
  case $accel in
    kvm) accel_args=(-accel kvm -cpu max) ;;
    *) accel_args=(-accel tcg,thread=multi -cpu max) ;;
  esac
  rm -f "$dir/root.qcow2"
  qemu-img create -q -f qcow2 -F raw -b "$IMAGE" "$dir/root.qcow2"
  : > "$dir/stream.log"; : > "$dir/console.log"
  local consoles=(-serial "file:$dir/console.log" -serial "file:$dir/stream.log")
  [ "$LANE_NAME" = shell ] && consoles=(-serial mon:stdio -serial "file:$dir/stream.log")
  qemu-system-x86_64 "${accel_args[@]}" -m "$MEM" -smp "$SMP" -nodefaults -display none -no-reboot \
    "${consoles[@]}" -kernel "$VMLINUZ" -initrd "$INITRD" \
    -drive "file=$dir/root.qcow2,if=virtio,format=qcow2" -drive "file=$dir/payload.img,if=virtio,format=raw" \
    -append "$LANE_CMDLINE" &
  QPID=$!
  local qpid_=$QPID
  if [ "$stream" = 1 ]; then
    # tail ends with qemu (--pid), so the pipeline ends by itself
    tail --pid="$QPID" -n +1 -F "$dir/stream.log" 2>/dev/null | sed -u "s/\r\$//; s/^/[$LANE_NAME] /" &
    TPID=$!
  fi
  local start=$SECONDS rc=0
  while kill -0 "$QPID" 2>/dev/null; do
    if [ $((SECONDS - start)) -ge "$limit" ]; then rc=124; break; fi
    sleep 1
  done
  local tpid=$TPID
  TPID=""   # let the stream drain: tail stops once qemu is gone
  stop_vm
  wait "$qpid_" 2>/dev/null || true
  [ -n "$tpid" ] && { sleep 2; kill "$tpid" 2>/dev/null; wait "$tpid" 2>/dev/null; }
  rm -f "$dir/root.qcow2"
  return $rc
}

probe_boot() {  # probe_boot ACCEL LIMIT: boot the probe lane; 0 when it came up and powered off
  local dir=$WORK/probe-$1 t0=$SECONDS
  mkdir -p "$dir"
  eval "$(python3 "$VM/recipe.py" lane probe)"; LANE_NAME=probe
  make_payload probe "$dir"
  if boot "$dir" "$1" "$2" 0 && grep -q '::: BOOTED' "$dir/stream.log"; then
    log "probe: $1 guest booted and powered off in $((SECONDS - t0)) s"; return 0
  fi
  log "probe: $1 guest did not come up within $2 s"; return 1
}

ACCEL=""
pick_accel() {
  [ -n "$ACCEL" ] && return
  if [ -n "${LABCOAT_VM_ACCEL:-}" ]; then ACCEL=$LABCOAT_VM_ACCEL; log "accelerator $ACCEL (LABCOAT_VM_ACCEL)"; return; fi
  if [ ! -w /dev/kvm ]; then ACCEL=tcg; log "no usable /dev/kvm: TCG"; return; fi
  local verdict
  verdict=$CACHE/kvm-$(printf '%s %s %s' "$(uname -r)" "$KVER" "$(qemu-system-x86_64 --version | head -1)" | sha256sum | cut -c1-12)
  if [ -f "$verdict" ]; then ACCEL=$(cat "$verdict"); log "accelerator $ACCEL (probed before: $verdict)"; return; fi
  log "probing KVM (a 60 s boot at most)"
  ACCEL=tcg
  if probe_boot kvm 60; then ACCEL=kvm; fi
  echo "$ACCEL" > "$verdict"
  log "accelerator $ACCEL (a KVM guest $([ $ACCEL = kvm ] && echo booted || echo 'did not boot'); verdict kept in $verdict)"
}

# --- results -----------------------------------------------------------------------------------
declare -A CELL=() LANE_WALL=() LANE_STATE=()
STEP_ORDER=()
read_results() {  # read_results LANE DIR
  local lane=$1 dir=$2 name rc secs
  debugfs -R "rdump /results $dir" "$dir/payload.img" >/dev/null 2>&1 || true
  mkdir -p "$CACHE/results/$lane"
  rm -rf "$CACHE/results/$lane"/*
  [ -d "$dir/results" ] && cp -r "$dir/results/." "$CACHE/results/$lane/"
  cp "$dir/console.log" "$CACHE/results/$lane/console.log" 2>/dev/null || true
  if [ -f "$dir/results/steps.tsv" ]; then
    while IFS=$'\t' read -r name rc secs; do
      [[ " ${STEP_ORDER[*]} " == *" $name "* ]] || STEP_ORDER+=("$name")
      if [ "$rc" = 0 ]; then CELL[$lane/$name]="ok ${secs}s"; else CELL[$lane/$name]="FAIL($rc) ${secs}s"; fi
    done < "$dir/results/steps.tsv"
  fi
}

print_table() {
  local lane name row
  echo
  printf '%-20s' "step"; for lane in "${lanes[@]}"; do printf '%-22s' "$lane"; done; echo
  for name in "${STEP_ORDER[@]}"; do
    printf '%-20s' "$name"
    for lane in "${lanes[@]}"; do printf '%-22s' "${CELL[$lane/$name]:--}"; done; echo
  done
  printf '%-20s' "lane (wall)"
  for lane in "${lanes[@]}"; do printf '%-22s' "${LANE_STATE[$lane]:-not run} ${LANE_WALL[$lane]:-}"; done; echo
  echo "logs: $CACHE/results/LANE/ (one NAME.log per step, console.log, scenario JSON)"
}

run_lane() {  # run_lane LANE -> 0 when every step passed and the lane finished
  local lane=$1 dir=$WORK/$1 t0=$SECONDS rc=0
  eval "$(python3 "$VM/recipe.py" lane "$lane")" || exit 2
  LANE_NAME=$lane
  log "lane $lane: $LANE_SUMMARY"
  mkdir -p "$dir"
  make_payload "$lane" "$dir"
  log "lane $lane: booting ($ACCEL, ${MEM} MiB, $SMP CPUs, at most ${timeout}s)"
  boot "$dir" "$ACCEL" "$timeout" 1 || rc=$?
  read_results "$lane" "$dir"
  LANE_WALL[$lane]="$((SECONDS - t0))s"
  if [ $rc = 124 ]; then LANE_STATE[$lane]="TIMEOUT"; return 1; fi
  if [ ! -f "$dir/results/done" ]; then LANE_STATE[$lane]="UNFINISHED"; log "lane $lane did not finish: see $CACHE/results/$lane/console.log"; return 1; fi
  LANE_STATE[$lane]="done"
  [ -f "$dir/results/steps.tsv" ] || { LANE_STATE[$lane]="NO STEPS"; return 1; }
  ! awk -F'\t' '$2 != 0 {bad=1} END {exit !bad}' "$dir/results/steps.tsv"
}

prepare() {
  ensure_host
  mkdir -p "$CACHE"
  exec 9>"$CACHE/lock"
  flock -n 9 || { log "another vm.sh holds $CACHE/lock (one VM at a time): waiting"; flock 9; }
  build_image
  WORK=$(mktemp -d "$CACHE/run.XXXXXX")
  mkdir -p "$WORK/wheel"
  "$ROOT/.venv/bin/python" -m pip wheel -q --disable-pip-version-check --no-deps --no-build-isolation -w "$WORK/wheel" "$ROOT" 2>&1 | grep -v '^WARNING: Location' || true
  ls "$WORK/wheel"/labcoat-*.whl >/dev/null
}

case $cmd in
  lanes) for l in $(python3 "$VM/recipe.py" lanes); do eval "$(python3 "$VM/recipe.py" lane "$l")"; printf '%-12s %s\n' "$l" "$LANE_SUMMARY"; done ;;
  build) ensure_host; mkdir -p "$CACHE"; build_image; echo "$IMAGE" ;;
  clean) rm -rf "$CACHE"; log "removed $CACHE" ;;
  probe)  # how each accelerator fares here (KVM, then TCG), without deciding anything
    prepare; rc=1
    for a in ${LABCOAT_VM_ACCEL:-kvm tcg}; do probe_boot "$a" 180 && rc=0; done
    exit $rc ;;
  shell)
    prepare; pick_accel
    eval "$(python3 "$VM/recipe.py" lane shell)"; LANE_NAME=shell
    mkdir -p "$WORK/shell"; make_payload shell "$WORK/shell"
    boot "$WORK/shell" "$ACCEL" "$timeout" 0 || true ;;
  test)
    [ ${#lanes[@]} -gt 0 ] || read -r -a lanes <<< "$(python3 "$VM/recipe.py" lanes)"
    for l in "${lanes[@]}"; do python3 "$VM/recipe.py" lane "$l" >/dev/null || exit 2; done
    t_all=$SECONDS
    prepare; pick_accel
    status=0
    for l in "${lanes[@]}"; do run_lane "$l" || status=1; done
    print_table
    log "total $((SECONDS - t_all)) s; exit $status"
    exit $status ;;
  *) usage 2 ;;
esac
