# Reference solution, part 4 (runs inside the part 4 sandbox while `lab provoke part4` runs).
set -eu
# Wait for the squeezer: the runner samples PSI from before it starts, so a read after this is
# inside the run however late this script starts (a slow or emulated machine).
i=0
while ! pgrep -x squeezer >/dev/null && [ "$i" -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
sleep 4   # let the pressure build up: avg10 is recomputed every 2 s (two updates)
# ONE read: `some` and `full` are printed together from the same 2 s recomputation. Two greps
# with `answer` between them can straddle a recomputation on a slow machine (the check then
# rightly says the full line was not read with the some line).
psi=$(cat /proc/pressure/memory)
answer part4 psi_some "$(printf '%s\n' "$psi" | grep '^some')"
answer part4 psi_full "$(printf '%s\n' "$psi" | grep '^full')"
