# Decoy: does the runbook's change, then predicts the largest process by RSS.
set -eu
for p in $(pgrep -x log-agent); do echo 350 > /proc/$p/oom_score_adj; done
best=$(ps -eo pid=,rss= --sort=-rss | head -n 1 | awk '{print $1}')
answer part3 victim_pid "$best"
answer part3 victim_name "$(cat /proc/$best/comm)"
