# Decoy: does the runbook's change, then predicts the process with the highest oom_score_adj.
set -eu
for p in $(pgrep -x log-agent); do echo 350 > /proc/$p/oom_score_adj; done
best=$(for d in /proc/[0-9]*; do echo "$(cat $d/oom_score_adj 2>/dev/null || echo -1001) ${d#/proc/}"; done | sort -n | tail -n 1 | cut -d' ' -f2)
answer part3 victim_pid "$best"
answer part3 victim_name "$(cat /proc/$best/comm)"
