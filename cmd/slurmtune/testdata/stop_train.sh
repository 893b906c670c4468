#!/bin/sh
# Stands in for a training step that stops on the stop request: waits for
# SLURMTUNE_STOP_SIGNAL and exits 0 without a final checkpoint.
set -eu
trap 'echo "payload: got SIG$SLURMTUNE_STOP_SIGNAL"; exit 0' "$SLURMTUNE_STOP_SIGNAL"
echo "payload: waiting for SIG$SLURMTUNE_STOP_SIGNAL"
sleep 300 &
wait $!
