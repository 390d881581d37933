# Decoy: the CPU pressure file instead of the memory one.
set -eu
sleep 8
answer part4 psi_some "$(grep '^some' /proc/pressure/cpu)"
answer part4 psi_full "$(grep '^full' /proc/pressure/cpu || grep '^some' /proc/pressure/cpu | sed 's/^some/full/')"
