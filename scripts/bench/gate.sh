#!/usr/bin/env bash
# Benchmark of the evaluation library behind `slurmtune gate`:
# 100,000 prediction/reference pairs (~20 words each) plus 100,000 NLL lines
# and a review CSV, all metrics and gates, on one core (-cpu=1).
# Budget: under 2 s per evaluation. On a shared machine read "cpu-s/op"
# (process CPU time per evaluation) rather than the wall-clock ns/op.
# Extra arguments go to `go test`, e.g. -count=5 or -cpuprofile=cpu.out.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec go test -run='^$' -bench=Evaluate -benchmem -cpu=1 "$@" ./eval
