#!/bin/sh
# Stands in for eval in volume tests: perplexity e (nll 10 over 10 tokens).
set -eu
mkdir -p "$SLURMTUNE_EVAL_DIR"
echo '{"nll_sum": 10, "tokens": 10}' >"$SLURMTUNE_EVAL_DIR/nll.jsonl"
echo '{"prediction": "a b c", "reference": "a b c"}' >"$SLURMTUNE_EVAL_DIR/predictions.jsonl"
