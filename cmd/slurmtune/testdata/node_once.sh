#!/bin/sh
# Stands in for training in the node-death test: the first attempt runs long
# enough for its node to be killed under it; a later attempt finishes.
set -eu
marker="$SLURMTUNE_RUN_DIR/first-attempt-started"
if [ ! -e "$marker" ]; then
  touch "$marker"
  echo "first attempt on $(hostname)"
  sleep 300
fi
echo "attempt after the node died, on $(hostname)"
mkdir -p "$SLURMTUNE_CHECKPOINT_DIR/final"
echo survived >"$SLURMTUNE_CHECKPOINT_DIR/final/model.txt"
touch "$SLURMTUNE_CHECKPOINT_DIR/final/COMPLETE"
