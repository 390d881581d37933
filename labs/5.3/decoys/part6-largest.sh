# Decoy: blames the largest process, and divides its RSS by its age for a "rate".
set -eu
read -r pid name rss <<EOT
$(ps -eo pid=,comm=,rss= --sort=-rss | head -n 1)
EOT
age=$(ps -o etimes= -p "$pid" | tr -d ' ')
answer part6 leak_name "$name"
answer part6 leak_kib_per_s "$(awk -v r="$rss" -v a="$age" 'BEGIN {printf "%.1f", r / (a > 0 ? a : 1)}')"
