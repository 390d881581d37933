# Decoy: the right victim, but log-agent's oom_score_adj is never changed as the runbook asks.
set -eu
best=$(ps -eo pid=,rss= --sort=-rss | head -n 1 | awk '{print $1}')
answer part3 victim_pid "$best"
answer part3 victim_name "$(cat /proc/$best/comm)"
