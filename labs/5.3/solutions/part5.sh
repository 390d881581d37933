# Reference solution, part 5 (runs on the HOST: it starts a container of its own with docker).
# $LAB_SANDBOX names the lab's main sandbox, where answers are recorded.
set -eu
rec() { docker exec "$LAB_SANDBOX" answer part5 "$@" >/dev/null; }
docker rm -f lab53-part5 >/dev/null 2>&1 || true
docker run -d --name lab53-part5 --memory 96m --memory-swap 96m --network none labcoat/sandbox:latest \
  sleep infinity >/dev/null
cg() {  # read a file of the container's own memory cgroup, v1 or v2
  docker exec lab53-part5 sh -c "cat /sys/fs/cgroup/memory/$1 2>/dev/null || cat /sys/fs/cgroup/$2"
}
rec limit_bytes "$(cg memory.limit_in_bytes memory.max)"
rec usage_bytes "$(cg memory.usage_in_bytes memory.current)"
# Make it OOM: a child process needs more than the limit; the container itself keeps running.
docker exec lab53-part5 hog --name balloon --step-ms 0 200 >/dev/null 2>&1 || true
kills=$(docker exec lab53-part5 sh -c 'cat /sys/fs/cgroup/memory/memory.oom_control 2>/dev/null || cat /sys/fs/cgroup/memory.events' | awk '$1 == "oom_kill" {print $2}')
rec oom_kill "$kills"
rec oomkilled_flag "$(docker inspect -f '{{.State.OOMKilled}}' lab53-part5)"
