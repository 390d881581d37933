# Decoy: the right arithmetic, but log-agent's oom_score_adj is never changed as the runbook asks.
set -eu
limit=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)
unit=$(( limit / 4096 / 1000 ))
best=""; best_points=-1
for d in /proc/[0-9]*; do
  p=${d#/proc/}
  [ "$p" = "$$" ] && continue
  rss=$(awk '/^RssAnon:|^RssFile:|^RssShmem:/ {s += $2} END {print s / 4}' $d/status 2>/dev/null) || continue
  [ -n "$rss" ] || continue
  adj=$(cat $d/oom_score_adj)
  points=$(awk -v r="$rss" -v a="$adj" -v u="$unit" 'BEGIN {printf "%d", r + a * u}')
  if [ "$points" -gt "$best_points" ]; then best_points=$points; best=$p; fi
done
answer part3 victim_pid "$best"
answer part3 victim_name "$(cat /proc/$best/comm)"
