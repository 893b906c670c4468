#!/usr/bin/env bash
# `make demo`: the whole pipeline for real on the dev cluster. Runs
# examples/hf-tiny/pipeline.yaml: prep -> train a small Llama built from a
# config with the HF Trainer and DeepSpeed ZeRO-2 across both nodes x 2 ranks
# -> eval with a perplexity gate -> blue-green deploy of hf_serve.py behind
# `slurmtune router` -> one completion through the router, printed at the end.
# The model keeps serving afterwards (deploy.serve.time); the router stops
# with this script.
#
# Env: SLURMTUNE_DB (default bin/demo.db), DEMO_ROUTER_PORT (default 8077).
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/dev-cluster.sh env)"
export SLURMTUNE_DB="${SLURMTUNE_DB:-$PWD/bin/demo.db}"
pipeline=examples/hf-tiny/pipeline.yaml
# deploy.router.state of the pipeline, resolved against its directory.
state=$PWD/examples/hf-tiny/runs/router/hf-tiny.json
port=${DEMO_ROUTER_PORT:-8077}
mkdir -p "$(dirname "$state")"
start=$(date +%s)

bin/slurmtune router --listen "127.0.0.1:$port" --state "$state" \
	--access-log "$(dirname "$state")/access.log" >"$(dirname "$state")/router.log" 2>&1 &
router=$!
# shellcheck disable=SC2317 # run by trap
stop_router() {
	kill "$router" 2>/dev/null || true
	wait "$router" 2>/dev/null || true
}
trap stop_router EXIT

rc=0
run=$(bin/slurmtune submit "$pipeline" --set "deploy.router.state=$state" --wait --interval 2s) || rc=$?
echo "demo: run ${run:-?} took $(($(date +%s) - start))s" >&2
[ -z "${run:-}" ] || bin/slurmtune status "$run"
if [ "$rc" -ne 0 ]; then
	echo "demo: the run did not succeed (exit $rc): bin/slurmtune logs $run train" >&2
	exit "$rc"
fi
prompt="The cluster admin watches"
echo "demo: POST http://127.0.0.1:$port/v1/completions {\"prompt\": \"$prompt\"} through the router:" >&2
curl -sS --fail-with-body --max-time 60 "http://127.0.0.1:$port/v1/completions" \
	-H 'Content-Type: application/json' \
	-d "{\"model\": \"hf-tiny-llama\", \"prompt\": \"$prompt\", \"max_tokens\": 16}"
echo
bin/slurmtune deploy status hf-tiny || true
echo "demo: done in $(($(date +%s) - start))s; the model keeps serving until deploy.serve.time (scancel its job to stop it)" >&2
