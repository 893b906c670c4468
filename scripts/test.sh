#!/usr/bin/env bash
# `make test`: installs and starts what the tests need (the dev Slurm
# cluster, an sshd on loopback, shellcheck, promtool), then runs every Go
# test with SLURMTUNE_TEST_STRICT=1, so an integration test whose component
# is missing fails instead of skipping, then each fuzz target briefly.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

missing=()
command -v shellcheck >/dev/null || missing+=(shellcheck)
command -v promtool >/dev/null || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ]; then
  echo "test: installing ${missing[*]}" >&2
  # Keep package scripts from starting services (the prometheus server) here.
  had_policy=0
  [ -e /usr/sbin/policy-rc.d ] && had_policy=1
  [ "$had_policy" = 1 ] || { printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ "$had_policy" = 1 ] || rm -f /usr/sbin/policy-rc.d
fi

# Release builds (issue 18): `make release` needs patchelf; the tests of its
# files run them in older Debian userlands, made once and cached outside the
# repository (scripts/old-userland.sh).
command -v patchelf >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends patchelf >/dev/null; }
scripts/old-userland.sh up
eval "$(scripts/old-userland.sh env)"

# Headless Chromium for the dashboard's browser tests (ui/, slurmtune ui).
if ! command -v chromium >/dev/null; then
  echo "test: installing chromium" >&2
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi

scripts/dev-cluster.sh up
scripts/dev-sshd.sh up
eval "$(scripts/dev-cluster.sh env)"
eval "$(scripts/dev-sshd.sh env)"
export SLURMTUNE_TEST_STRICT=1

# gofmt, go vet and golangci-lint (installed at its pinned version the first
# time); a finding stops the tests here, with the linter's own report.
make lint || { echo "test: make lint failed (see above)" >&2; exit 1; }
start=$(date +%s)
# The release builds that scripts/release's tests check (dist/).
scripts/release/build.sh
# Everything but the fault tests, packages in parallel; then the fault tests,
# which stop and restart the cluster's daemons, alone.
go test -count=1 -timeout 25m -skip '^TestFault' ./...
go test -count=1 -timeout 10m -p 1 -run '^TestFault' ./...
FUZZTIME="${FUZZTIME:-5s}" scripts/fuzz.sh
echo "test: all tests passed in $(( $(date +%s) - start ))s" >&2
