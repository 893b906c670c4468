#!/bin/sh
# Stands in for training that overruns its time limit on the first attempt
# only (a marker in the run directory remembers), for retry tests.
set -eu
marker="$SLURMTUNE_RUN_DIR/timed-out-once"
if [ ! -e "$marker" ]; then
  touch "$marker"
  echo "first attempt: running past the time limit"
  sleep 600
fi
echo "second attempt: finishing"
mkdir -p "$SLURMTUNE_CHECKPOINT_DIR/final"
echo retried >"$SLURMTUNE_CHECKPOINT_DIR/final/model.txt"
touch "$SLURMTUNE_CHECKPOINT_DIR/final/COMPLETE"
