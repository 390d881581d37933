# Decoy: the right arithmetic, but log-agent's oom_score_adj is never changed as the runbook asks.
set -eu
limit=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)
# One awk over every process: RSS pages + adj x (limit pages / 1000), the highest wins.
best=$(for p in $(ls /proc | grep -E '^[0-9]+$'); do
  [ "$p" = "$$" ] || echo "$p $(cat /proc/$p/oom_score_adj 2>/dev/null) $(grep -E '^Rss(Anon|File|Shmem):' /proc/$p/status 2>/dev/null | awk '{s += $2} END {print s + 0}')"
done | awk -v unit=$((limit / 4096 / 1000)) 'NF == 3 && $3 > 0 {pts = $3 / 4 + $2 * unit; if (pts > top) {top = pts; pid = $1}} END {print pid}')
answer part3 victim_pid "$best"
answer part3 victim_name "$(cat /proc/$best/comm)"
