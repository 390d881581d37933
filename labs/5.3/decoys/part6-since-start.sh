# Decoy: finds the leak by watching, but takes RSS / age as its rate (the memory it started with counts as growth).
set -eu
ps -eo pid=,comm=,rss= > /tmp/rss-1; sleep 10; ps -eo pid=,comm=,rss= > /tmp/rss-2
read -r pid name <<EOT
$(awk 'NR == FNR {b[$1] = $3; next} ($1 in b) {g = $3 - b[$1]; if (g > best) {best = g; p = $1; n = $2}} END {print p, n}' /tmp/rss-1 /tmp/rss-2)
EOT
rss=$(ps -o rss= -p "$pid" | tr -d ' '); age=$(ps -o etimes= -p "$pid" | tr -d ' ')
answer part6 leak_name "$name"
answer part6 leak_kib_per_s "$(awk -v r="$rss" -v a="$age" 'BEGIN {printf "%.1f", r / (a > 0 ? a : 1)}')"
