# Reference solution, part 4 (runs inside the part 4 sandbox while `lab provoke part4` runs).
set -eu
sleep 4   # let the pressure build up: avg10 is recomputed every 2 s (two updates)
answer part4 psi_some "$(grep '^some' /proc/pressure/memory)"
answer part4 psi_full "$(grep '^full' /proc/pressure/memory)"
