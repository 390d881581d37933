#!/bin/bash
# labcoat proving ground: one lane's steps inside the guest (shell init or systemd unit).
# Results: /payload/results/steps.tsv (name, exit status, seconds), NAME.log per step, read by
# the host with debugfs after poweroff; the same lines stream to the second serial port.
# The systemd lane's unit (baked into the base image) starts this with /bin/sh, which is dash on
# Debian: `read -a` and `export -f` are bash's, so go on under bash whoever started it.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
set -u
export HOME=/root PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LABCOAT_WARM=0 COLUMNS=150 TERM=dumb NO_COLOR=1 LABCOAT_STATE=/root/labcoat-state
export LABCOAT_TIME_SCALE=${LABCOAT_TIME_SCALE:-$(cat /payload/time-scale 2>/dev/null || echo 1)}
P=/payload R=/payload/results
mkdir -p "$R"
lane=$(sed -n 's/.*labcoat\.lane=\([^ ]*\).*/\1/p' /proc/cmdline)
lab=$(cat "$P/lab")
read -r -a wanted < "$P/steps"
out=/dev/ttyS1
[ -w $out ] || out=/dev/null
say() { echo "$*" | tee -a "$R/stream.log" > $out; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }

finish() {
  say "::: DONE lane=$lane uptime=$(uptime_s)"
  echo "$(uptime_s)" > "$R/done"
  sync; cd /; umount /payload 2>/dev/null; sync
  echo o > /proc/sysrq-trigger
  sleep 30
}
trap finish EXIT

selected() {  # a step runs when it is named, or its group (scenarios) is, or "all"
  local s
  for s in "${wanted[@]}"; do
    [ "$s" = all ] || [ "$s" = "$1" ] || { [ "$s" = scenarios ] && [ "${1#scen-}" != "$1" ]; } && return 0
  done
  return 1
}

step() {  # step NAME TIMEOUT CMD...: run, log, stream, record
  local name=$1 limit=$2 rc t0 t1
  shift 2
  selected "$name" || return 0
  say "::: BEGIN $name (uptime $(uptime_s))"
  t0=$(date +%s.%N)
  timeout -k 15 "$limit" bash -c '"$@"' step "$@" 2>&1 | tee "$R/$name.log" | sed -u "s/^/$name| /" > $out
  rc=${PIPESTATUS[0]}
  t1=$(date +%s.%N)
  [ "$rc" = 124 ] && echo "(timed out after ${limit}s)" >> "$R/$name.log"
  printf '%s\t%s\t%.0f\n' "$name" "$rc" "$(echo "$t1 - $t0" | bc 2>/dev/null || awk "BEGIN{print $t1-$t0}")" >> "$R/steps.tsv"
  say "::: END $name rc=$rc"
  return 0
}

# --- the pieces steps are made of ---------------------------------------------------------
environment() {
  echo "kernel: $(uname -r)  cmdline: $(cat /proc/cmdline)"
  echo "init: $(cat /proc/1/comm)  cgroup: $(stat -fc %T /sys/fs/cgroup)  controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
  echo "swap: $(swapon --show --noheadings 2>&1 | tr '\n' ' ')  psi: $(head -1 /proc/pressure/memory 2>&1)"
  [ -d "$P/bin" ] && install -m 0755 "$P"/bin/* /usr/local/bin/
  pip install -q --no-deps --no-index --force-reinstall "$P"/labcoat-*.whl || return 1
  lab --version || return 1
  if [ -f "$P/images.tar" ] && [ "${LABCOAT_BACKEND:-}" = podman ]; then  # v2-podman: no dockerd
    podman info --format 'podman {{.Version.Version}}: cgroup {{.Host.CgroupsVersion}} manager={{.Host.CgroupManager}} runtime={{.Host.OCIRuntime.Name}} storage={{.Store.GraphDriverName}} network={{.Host.NetworkBackend}} events={{.Host.EventLogger}}' || return 1
    podman load -i "$P/images.tar" | tail -3 || return 1
    podman images
  elif [ -f "$P/images.tar" ]; then
    for _ in $(seq 180); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info --format 'docker: {{.ServerVersion}} driver={{.CgroupDriver}} v{{.CgroupVersion}} swaplimit={{.SwapLimit}} warnings={{.Warnings}}' || return 1
    docker load -i "$P/images.tar" | tail -3 || return 1
  fi
}

fresh_start() {  # lab start; lab check fails on a fresh lab (exit 1, not 4/5); lab stop
  # FRESH_PARTS: only those parts (the local lane: part 5 needs a Docker engine, so a plain
  # `lab check` there rightly exits 4, "could not check, not your fault")
  lab start "$lab" || return 1
  lab status || return 1
  local rc=1 p r
  if [ -n "${FRESH_PARTS:-}" ]; then
    for p in $FRESH_PARTS; do
      lab check "$p"; r=$?
      [ $r = 1 ] || { echo "lab check $p on a fresh lab exited $r (expected 1: checks failed)"; rc=$r; }
    done
  else
    lab check; rc=$?
  fi
  lab stop || return 1
  [ $rc = 1 ] || { echo "lab check on a fresh lab exited $rc (expected 1: checks failed)"; return 1; }
}

grade_reference() {  # the reference submission must score full marks
  # The grader's limits are the instructor's to set: an emulated CPU (TCG) needs the per-script
  # limit stretched like every other limit here (part 5's script took 62.6 s against 60 under TCG).
  local t; t=$(python3 -c "import sys; print(round(60 * max(1.0, float(sys.argv[1]))))" "$LABCOAT_TIME_SCALE")
  lab grade "$lab" --submission "$P/reference" --timeout "$t" --grade-timeout 3600 --json "$R/grade.json" || return 1
  python3 - "$R/grade.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
def find(o, *keys):
    for k in keys:
        if isinstance(o, dict) and k in o:
            return o[k]
points, total = find(d, "points", "score"), find(d, "max_points", "total", "possible")
print(f"reference submission: {points} / {total}")
sys.exit(0 if points is not None and points == total else 1)
PY
}

scenario() {  # lab run NAME --json, then what the proving ground itself demands of it
  local name=$1
  lab run "$name" --json > "$R/scen-$name.json"; local rc=$?
  python3 /payload/scenario_summary.py "$R/scen-$name.json" "$name" || return 1
  return $rc
}

unit_v2() {  # the unit tests that need a real cgroup v2 host: here they must run, not skip
  cd /payload/src || return 1
  python3 -m pytest -q -p no:cacheprovider -rs tests/unit/test_local_backend.py tests/unit/test_cgroup.py > /tmp/unit.log 2>&1
  local rc=$?
  cat /tmp/unit.log
  if grep -q 'SKIPPED.*cgroup v2' /tmp/unit.log; then echo "the real cgroup v2 tests skipped on a v2 host"; return 1; fi
  return $rc
}

diag_part() {  # diag-PART: the reference solution in a started lab, then what lab check says
  local part=$1 box
  lab start "$lab" >/dev/null || return 1
  box=$(docker ps --filter label=labcoat.kind=lab --format '{{.Names}}' | grep -v -- '-part[0-9]' | head -1)
  echo "sandbox $box"
  docker exec "$box" sh -c 'grep -E "^(anon|file|shmem|active_file|inactive_file) " /sys/fs/cgroup/memory.stat'
  docker exec -i -w /root -e LAB_PART="$part" "$box" bash -x -s < "$P/reference/$part.sh" 2>&1 | tail -30
  docker exec "$box" sh -c 'cat /root/answers/*.txt; grep -E "^(anon|file|shmem|active_file|inactive_file) " /sys/fs/cgroup/memory.stat'
  sleep 3
  docker exec "$box" sh -c 'grep -E "^(file) " /sys/fs/cgroup/memory.stat; fincore /root/lab/big.bin'
  lab check "$part"; local rc=$?
  lab stop >/dev/null
  return $rc
}

kc_run() {  # v2-killercoda: `lab killercoda run --solutions --on-this-machine`, then what the kernel saw
  echo "labcoat images in the VM's Docker before the setup: $(docker images -q 'labcoat/*' | wc -l)"
  command -v hog answer || echo "(no hog, no answer on the VM: the export must bring them)"
  lab killercoda run "$P/kc-export" --solutions --on-this-machine --all-steps --json \
    --setup-timeout 3600 --script-timeout 1800 --verify-timeout 900 > "$R/kc-run.json"
  local rc=$?
  python3 - "$R/kc-run.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for s in d["setup"]:
    print(f"setup {s['script']}: exit {s['exit']} in {s['seconds']} s")
for s in d["steps"]:
    print(f"{s['title'][:40]:40} {s['status']:16} before={s.get('before')} after={s.get('after')} {s['seconds']} s")
print(f"ok={d['ok']} total {d['seconds']} s")
PY
  echo "--- part cgroups (memory.max, oom_kill):"
  for cg in /sys/fs/cgroup/labcoat.*; do
    [ -d "$cg" ] && echo "$(basename "$cg") max=$(cat "$cg/memory.max") $(grep oom_kill "$cg/memory.events" | tr '\n' ' ')"
  done
  echo "--- the VM's Docker after: $(docker images --format '{{.Repository}}:{{.Tag}}' | tr '\n' ' ')"
  docker inspect -f '{{.Name}} memory={{.HostConfig.Memory}} oomkilled={{.State.OOMKilled}}' lab53-part5 2>&1
  tail -n 30 /var/log/labcoat-setup.log
  return $rc
}

lifecycle() {  # v2-podman: the sandbox lifecycle tests on the engine of $LABCOAT_BACKEND
  cd /payload/src || return 1
  # labcoat starts `podman system service` itself when nothing answers (backends/podman.py); the
  # suite's own "is there an engine" probe (tests/conftest.py) asks DOCKER_HOST: point it there
  python3 -c 'from labcoat.backends import get_backend; get_backend("podman").client' || return 1
  DOCKER_HOST=${LABCOAT_PODMAN_HOST:-unix:///run/podman/podman.sock} LAB_REQUIRE_DOCKER=1 \
    python3 -m pytest -v -p no:randomly --durations=10 tests/integration/test_lifecycle.py
  local rc=$?
  echo "--- left behind: $(podman ps -a --format '{{.Names}} {{.Labels}}' | grep -c labcoat) labcoat containers; conmon processes: $(pgrep -c conmon)"
  return $rc
}

export -f lifecycle kc_run diag_part environment fresh_start grade_reference scenario unit_v2
export P R lab

# --- lanes -------------------------------------------------------------------------------
[ "$lane" = v2-podman ] && export LABCOAT_BACKEND=podman
case $lane in v2-*) step env 900 environment ;; esac
case $lane in
  v2-cgroupfs|v2-systemd)
    step doctor 300 lab doctor
    step start 900 fresh_start
    step selftest 5400 lab selftest "$lab" $(cat "$P/selftest-args")
    for s in cache-fill cache-counts oom-kill oom-victim psi-pressure qos-classes swap-thrash; do
      step "scen-$s" 900 scenario "$s"
    done
    step grade 1800 grade_reference
    for part in part1 part2 part3 part4 part5; do  # only when named: --steps diag-part2
      [[ " ${wanted[*]} " == *" diag-$part "* ]] && step "diag-$part" 900 diag_part "$part"
    done
    ;;
  v2-local)
    export LABCOAT_BACKEND=local FRESH_PARTS="part1 part2 part3 part4"
    step unit-v2 900 unit_v2
    step doctor 300 lab doctor
    step start 900 fresh_start
    step selftest 3600 lab selftest "$lab" --part part1 --part part2 --part part3 --part part4
    for s in cache-fill oom-kill psi-pressure; do
      step "scen-$s" 900 scenario "$s"
    done
    ;;
  v2-podman)  # issue 11: the second engine on cgroup v2 (cgroupfs manager: no systemd here)
    selftest_args=$(cat "$P/selftest-args")  # LABCOAT_VM_SELFTEST_ARGS, else part 3 (the memcg OOM kill)
    step doctor 300 lab doctor   # also starts labcoat's `podman system service`
    step selftest 5400 lab selftest "$lab" ${selftest_args:---part part3}
    step lifecycle 3600 lifecycle
    ;;
  v2-killercoda)  # issue 13 (kc): the Killercoda export, played on this VM as Killercoda plays it
    step kc-run 10800 kc_run
    ;;
  shell)
    say "shell lane: /payload holds the wheel and images; poweroff with: echo o > /proc/sysrq-trigger"
    setsid -c bash -l <>/dev/ttyS0 >&0 2>&1
    ;;
  probe)
    say "::: BOOTED"
    ;;
  *) say "unknown lane $lane" ;;
esac
