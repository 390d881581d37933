# Decoy: starts the container, but reads the limit and usage of the lab's own sandbox.
set -eu
rec() { docker exec "$LAB_SANDBOX" answer part5 "$@" >/dev/null; }
docker rm -f lab53-part5 >/dev/null 2>&1 || true
docker run -d --name lab53-part5 --memory 96m --memory-swap 96m --network none labcoat/sandbox:latest \
  sleep infinity >/dev/null
cg() { docker exec "$LAB_SANDBOX" sh -c "cat /sys/fs/cgroup/memory/$1 2>/dev/null || cat /sys/fs/cgroup/$2"; }
rec limit_bytes "$(cg memory.limit_in_bytes memory.max)"
rec usage_bytes "$(cg memory.usage_in_bytes memory.current)"
docker exec lab53-part5 hog --name balloon --step-ms 0 200 >/dev/null 2>&1 || true
rec oom_kill 1
rec oomkilled_flag false
