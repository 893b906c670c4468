#!/usr/bin/env bash
# Router load benchmark: ~1,000 req/s over loopback against a backend
# directly and through `slurmtune router` (built here; backend, router and
# load generator each in their own process), reporting p50/p99 and the
# latency the router adds (target: p99 added < 1 ms), then the in-process Go
# benchmarks.
#
# Environment (all optional):
#   SLURMTUNE_LOAD_RPS=1000      request rate per phase
#   SLURMTUNE_LOAD_SECONDS=3     length of each measured phase
#   SLURMTUNE_LOAD_ROUNDS=3      direct/router rounds (alternated; median reported)
#   SLURMTUNE_LOAD_STRICT=1      fail if the median added p99 is over 1 ms
#   BENCHTIME=2s                 -benchtime for the Go benchmarks (0 skips them)
set -euo pipefail

cd "$(dirname "$0")/../.."

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/slurmtune" ./cmd/slurmtune
SLURMTUNE_LOAD=1 SLURMTUNE_BIN="$bin/slurmtune" go test ./serve -run '^TestLoad$' -count=1 -v

if [[ "${BENCHTIME:-2s}" != "0" ]]; then
	go test ./serve -run '^$' -bench 'BenchmarkRouterServeHTTP|BenchmarkBackendDirect' \
		-benchtime "${BENCHTIME:-2s}" -count=1
fi
