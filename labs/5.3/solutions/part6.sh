# Reference solution, part 6 (runs inside the part 6 sandbox): sample every RSS twice, compare.
set -eu
# RSS from smaps_rollup (exact): before Linux 6.2, VmRSS and ps lag by up to 64 page faults per
# thread, so a slow leak's VmRSS moves in 256 KiB steps (Documentation/filesystems/proc.rst).
# Each line carries the time (/proc/uptime) just before that process was read: the rate divides
# by the time between the two reads of that process, not between the loops' ends (a loop over
# /proc can take seconds on a busy or emulated host, and two loops need not take as long).
rss() {  # "PID COMM RSS_KB UPTIME" for every process with memory
  for d in /proc/[0-9]*; do
    read -r up _ < /proc/uptime
    awk -v p="${d#/proc/}" -v n="$(cat "$d/comm" 2>/dev/null)" -v t="$up" \
      '/^Rss:/ {print p, n, $2, t; exit}' "$d/smaps_rollup" 2>/dev/null || true
  done
}
rss > /tmp/rss-1
# 5 s: the rate is steady, so a longer window only narrows the page/tick rounding (at 48 KiB/s,
# 240 KiB of growth against a 4 KiB page); measured within 9% of the check's own 3 s sample.
sleep 5
rss > /tmp/rss-2
# Join on PID; the leak is the process that grew the most.
read -r name rate <<EOT
$(awk 'NR == FNR {before[$1] = $3; at[$1] = $4; next}
  ($1 in before) && $4 > at[$1] {g = ($3 - before[$1]) / ($4 - at[$1]); if (g > best) {best = g; name = $2}}
  END {printf "%s %.1f\n", name, best}' /tmp/rss-1 /tmp/rss-2)
EOT
answer part6 leak_name "$name"
answer part6 leak_kib_per_s "$rate"
