#!/usr/bin/env bash
# Runs examples/tiny/pipeline.yaml on the dev cluster and follows it to the
# end, then prints the status table. Used by `make demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/dev-cluster.sh env)"
export SLURMTUNE_DB="${SLURMTUNE_DB:-$PWD/bin/demo.db}"
start=$(date +%s)
rc=0
run=$(bin/slurmtune submit examples/tiny/pipeline.yaml --wait --interval 2s) || rc=$?
echo "demo run ${run:-?} took $(( $(date +%s) - start ))s" >&2
bin/slurmtune status "${run}"
exit "$rc"
