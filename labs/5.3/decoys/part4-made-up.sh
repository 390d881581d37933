# Decoy: plausible-looking PSI lines that were never read.
set -eu
answer part4 psi_some "some avg10=12.50 avg60=4.10 avg300=0.95 total=4138191"
answer part4 psi_full "full avg10=11.80 avg60=3.90 avg300=0.90 total=4012345"
