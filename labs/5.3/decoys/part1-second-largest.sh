# Decoy: the second-largest process (a sort on the wrong column or an off-by-one).
set -eu
read -r pid name <<EOT
$(ps -eo pid=,comm=,rss= --sort=-rss | sed -n 2p | awk '{print $1, $2}')
EOT
answer part1 largest_pid "$pid"
answer part1 largest_name "$name"
answer part1 mem_free_kb "$(awk '/^MemFree:/ {print $2}' /proc/meminfo)"
answer part1 mem_available_kb "$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)"
answer part1 limit_bytes "$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)"
