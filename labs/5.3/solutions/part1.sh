# Reference solution, part 1 (runs inside the sandbox).
set -eu
# The largest process by resident set size (RSS), not by virtual size.
read -r pid name <<EOT
$(ps -eo pid=,comm=,rss= --sort=-rss | head -n 1 | awk '{print $1, $2}')
EOT
answer part1 largest_pid "$pid"
answer part1 largest_name "$name"
answer part1 mem_free_kb "$(awk '/^MemFree:/ {print $2}' /proc/meminfo)"
answer part1 mem_available_kb "$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)"
# free shows the host; the container's limit is in its cgroup (v1 or v2).
limit=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)
answer part1 limit_bytes "$limit"
