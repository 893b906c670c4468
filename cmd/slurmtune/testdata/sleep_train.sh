#!/bin/sh
# Stands in for a long training step in fault tests: sleeps, then writes a
# complete final checkpoint.
set -eu
echo "world size ${WORLD_SIZE:-1}"
sleep "${SLURMTUNE_TEST_SLEEP:-25}"
mkdir -p "$SLURMTUNE_CHECKPOINT_DIR/final"
echo slept >"$SLURMTUNE_CHECKPOINT_DIR/final/model.txt"
touch "$SLURMTUNE_CHECKPOINT_DIR/final/COMPLETE"
