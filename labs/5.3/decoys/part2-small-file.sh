# Decoy: a 16 MiB file instead of the stated 64 MiB, measured properly otherwise.
set -eu
mkdir -p /root/lab
dd if=/dev/urandom of=/root/lab/big.bin bs=1M count=16 status=none
# v1: memory/memory.stat total_cache; v2: memory.stat file. Only the file that exists is given
# to awk: mawk (Debian's awk) stops at a missing input file instead of going on to the next.
cache() { for f in /sys/fs/cgroup/memory/memory.stat /sys/fs/cgroup/memory.stat; do
  [ -r "$f" ] && { awk '$1 == "total_cache" || $1 == "file" {print $2; exit}' "$f"; return; }; done; }
now() { date +%s%N; }
dd if=/root/lab/big.bin iflag=nocache count=0 status=none
answer part2 cache_before_bytes "$(cache)"
t0=$(now); cat /root/lab/big.bin >/dev/null; t1=$(now)
t2=$(now); cat /root/lab/big.bin >/dev/null; t3=$(now)
answer part2 cache_after_bytes "$(cache)"
answer part2 cold_seconds "$(awk -v n=$((t1 - t0)) 'BEGIN {printf "%.6f", n / 1e9}')"
answer part2 warm_seconds "$(awk -v n=$((t3 - t2)) 'BEGIN {printf "%.6f", n / 1e9}')"
