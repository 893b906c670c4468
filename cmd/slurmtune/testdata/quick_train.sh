#!/bin/sh
# Stands in for training in volume tests: writes a complete final checkpoint.
set -eu
mkdir -p "$SLURMTUNE_CHECKPOINT_DIR/final"
echo "world size ${WORLD_SIZE:-1}"
echo quick >"$SLURMTUNE_CHECKPOINT_DIR/final/model.txt"
touch "$SLURMTUNE_CHECKPOINT_DIR/final/COMPLETE"
# Two points of the metrics contract (README, "Metrics and the dashboard"), from rank 0.
if [ "${RANK:-0}" = 0 ]; then
  printf '{"step": 1, "time": %s, "loss": 2.5}\n{"step": 2, "time": %s, "loss": 2.25}\n' "$(date +%s)" "$(date +%s)" >>"$SLURMTUNE_METRICS_FILE"
fi
