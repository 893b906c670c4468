#!/bin/sh
# Stands in for training in the secrets test: proves the secrets reached the
# job's environment by printing their SHA-256 (never the values).
set -eu
echo "hf_token sha256 $(printf %s "${HF_TOKEN:-}" | sha256sum | cut -c1-64)"
echo "wandb sha256 $(printf %s "${WANDB_API_KEY:-}" | sha256sum | cut -c1-64)"
