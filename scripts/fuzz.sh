#!/usr/bin/env bash
# Runs every fuzz target for FUZZTIME (default 10s) each. `make test` runs it
# briefly; run it longer by hand with `FUZZTIME=10m make fuzz`.
set -euo pipefail
cd "$(dirname "$0")/.."
t="${FUZZTIME:-10s}"
n=0
while read -r pkg dir; do
  targets=$({ cat "$dir"/*_test.go 2>/dev/null || true; } | sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' | sort -u)
  for f in $targets; do
    echo "fuzz $pkg $f ($t)"
    if ! out=$(go test -run '^$' -fuzz "^${f}\$" -fuzztime "$t" "$pkg" 2>&1); then
      printf '%s\n' "$out" >&2
      echo "fuzz: $pkg $f failed" >&2
      exit 1
    fi
    n=$((n + 1))
  done
done < <(go list -f '{{.ImportPath}} {{.Dir}}' ./...)
echo "fuzz: $n targets passed"
