# Decoy: trusts `free` inside the container: MemFree taken as available, the host's total as the limit.
set -eu
read -r pid name <<EOT
$(ps -eo pid=,comm=,rss= --sort=-rss | head -n 1 | awk '{print $1, $2}')
EOT
answer part1 largest_pid "$pid"
answer part1 largest_name "$name"
free_kb=$(free -k | awk '/^Mem:/ {print $4}')
answer part1 mem_free_kb "$free_kb"
answer part1 mem_available_kb "$free_kb"
answer part1 limit_bytes "$(free -b | awk '/^Mem:/ {print $2}')"
