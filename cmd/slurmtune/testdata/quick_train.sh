#!/bin/sh
# Stands in for training in volume tests: writes a complete final checkpoint.
set -eu
mkdir -p "$SLURMTUNE_CHECKPOINT_DIR/final"
echo "world size ${WORLD_SIZE:-1}"
echo quick >"$SLURMTUNE_CHECKPOINT_DIR/final/model.txt"
touch "$SLURMTUNE_CHECKPOINT_DIR/final/COMPLETE"
