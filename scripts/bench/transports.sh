#!/usr/bin/env bash
# Transport benchmarks against the dev cluster, its sshd and its slurmrestd
# (package slurm/slurmtest/conformance):
#   BenchmarkRefresh/T        one status refresh of 1,000 tracked jobs (20 real
#                             held jobs, jobs finished long ago, ids that never
#                             existed): wall time (ns/op) and roundtrips/op
#                             (Slurm commands = SSH session execs, or HTTP
#                             requests). Target: 1 round trip for the live
#                             jobs (T-live), plus 1 for the jobs that left the
#                             controller (sacct / slurmdb), never one per job.
#   BenchmarkSubmitChain/T    submitting a 4-stage run (4 sbatch, each afterok
#                             the previous; the first held, nothing runs)
#                             over local, ssh and rest, against sbatch run
#                             directly (sbatch-direct).
# T is local, ssh or rest. Every job submitted is cancelled.
#
# Environment (all optional):
#   BENCHTIME=10x   -benchtime (refreshes per transport; chains per transport)
#   COUNT=1         -count (repeat on a shared machine to see the noise)
#   STRICT=1        exit 1 when a refresh takes more round trips than the target
# Extra arguments go to `go test`.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ -z "${SLURM_CONF:-}" ]; then eval "$(scripts/dev-cluster.sh env)"; fi
if [ -z "${SLURMTUNE_SSH_HOST:-}" ]; then eval "$(scripts/dev-sshd.sh env)"; fi

out=$(mktemp)
trap 'rm -f "$out"' EXIT

go test ./slurm/slurmtest/conformance -run '^$' -bench '^(BenchmarkRefresh|BenchmarkSubmitChain)$' \
	-benchtime "${BENCHTIME:-10x}" -count "${COUNT:-1}" "$@" 2>&1 | tee "$out"

# Summary: the round trips of each refresh against the target.
fail=0
echo
printf '%-28s %12s %14s %8s\n' benchmark ms/op roundtrips/op target
while read -r name ns trips; do
	target=2
	case $name in *-live*) target=1 ;; esac
	case $name in BenchmarkSubmitChain*) target=- ;; esac
	printf '%-28s %12.1f %14s %8s\n' "$name" "$(awk -v n="$ns" 'BEGIN { print n / 1e6 }')" "$trips" "$target"
	if [ "$target" != - ] && awk -v t="$trips" -v g="$target" 'BEGIN { exit !(t > g) }'; then
		fail=1
	fi
done < <(awk '$1 ~ /^Benchmark(Refresh|SubmitChain)\// {
	ns = ""; rt = ""
	for (i = 3; i < NF; i++) { if ($(i+1) == "ns/op") ns = $i; if ($(i+1) == "roundtrips/op") rt = $i }
	sub(/-[0-9]+$/, "", $1); print $1, ns, rt }' "$out")

if [ "${STRICT:-0}" = 1 ] && [ "$fail" = 1 ]; then
	echo "transports: a refresh took more round trips than its target" >&2
	exit 1
fi
