#!/usr/bin/env bash
# Benchmarks of the prep stage (package dataprep) on generated chat JSONL:
# format checks + exact dedup + toxicity + PII + split, with and without
# near-duplicate detection, at Workers=1 and Workers=2.
#
# Usage: scripts/bench/prep.sh [extra go test flags]
# Environment:
#   DATAPREP_BENCH_MB   size of the generated input in MB (default 64)
#   DATAPREP_BENCH_DIR  where input and outputs go (default: system temp dir;
#                       /dev/shm measures compute without disk costs)
#   BENCHTIME           go test -benchtime (default 3x)
#
# Metrics: MB/s (wall clock), MB/cpu-s (bytes per CPU-second of the
# process, i.e. per core), peak-RSS-MiB, peak-live-heap-MiB, allocs/op.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec go test -run='^$' -bench=Prep -benchtime="${BENCHTIME:-3x}" "$@" ./dataprep
