# Decoy: the right process, its growth over a minute recorded as the rate (KiB per minute, not per second).
set -eu
ps -eo pid=,comm=,rss= > /tmp/rss-1; sleep 15; ps -eo pid=,comm=,rss= > /tmp/rss-2
read -r name growth <<EOT
$(awk 'NR == FNR {b[$1] = $3; next} ($1 in b) {g = $3 - b[$1]; if (g > best) {best = g; n = $2}} END {print n, best}' /tmp/rss-1 /tmp/rss-2)
EOT
answer part6 leak_name "$name"
answer part6 leak_kib_per_s "$(( growth * 4 ))"
