# Reference solution, part 3 (runs inside the part 3 sandbox).
set -eu
# A prediction counts only before the OOM: once it happened, the one on file stands.
# v1: memory/memory.oom_control; v2: memory.events. Only the file that exists is given to awk:
# mawk (Debian's awk) stops at a missing input file, so on v2 the count was always empty and the
# second run predicted again among the survivors.
kills=0
for f in /sys/fs/cgroup/memory/memory.oom_control /sys/fs/cgroup/memory.events; do
  [ -r "$f" ] && { kills=$(awk '$1 == "oom_kill" {print $2; exit}' "$f"); break; }
done
if [ "${kills:-0}" -gt 0 ] && grep -q '^victim_pid:' /root/answers/part3.txt 2>/dev/null; then
  echo "the OOM already happened; keeping the prediction on file"; exit 0
fi
# 1. The runbook's change: raising oom_score_adj needs no privilege.
for p in $(pgrep -x log-agent); do echo 350 > /proc/$p/oom_score_adj; done
# 2. The memcg OOM killer's arithmetic (mm/oom_kill.c oom_badness), with the cgroup's limit:
#    points = RSS pages + swap pages + page-table pages + adj * (limit pages / 1000)
limit=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)
unit=$(( limit / 4096 / 1000 ))
best=""; best_points=-1
for d in /proc/[0-9]*; do
  p=${d#/proc/}
  [ "$p" = "$$" ] && continue
  rss=$(awk '/^RssAnon:|^RssFile:|^RssShmem:/ {s += $2} END {print s / 4}' $d/status 2>/dev/null) || continue
  [ -n "$rss" ] || continue
  pte=$(awk '/^VmPTE:/ {print $2 / 4}' $d/status 2>/dev/null) || continue  # it may have just ended
  adj=$(cat $d/oom_score_adj 2>/dev/null) || continue
  [ "$adj" = -1000 ] && continue
  points=$(awk -v r="$rss" -v t="${pte:-0}" -v a="$adj" -v u="$unit" 'BEGIN {printf "%d", r + t + a * u}')
  if [ "$points" -gt "$best_points" ]; then best_points=$points; best=$p; fi
done
answer part3 victim_pid "$best"
answer part3 victim_name "$(cat /proc/$best/comm)"
