#!/usr/bin/env bash
# Runs every fuzz target for FUZZTIME (default 10s) each. `make test` runs it
# briefly; run it longer by hand with `FUZZTIME=10m make fuzz`.
set -euo pipefail
cd "$(dirname "$0")/.."
t="${FUZZTIME:-10s}"
go list -f '{{.ImportPath}} {{.Dir}}' ./... | while read -r pkg dir; do
  grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u | while read -r f; do
    echo "fuzz $pkg $f ($t)"
    go test -run '^$' -fuzz "^${f}\$" -fuzztime "$t" "$pkg" >/dev/null
  done
done
