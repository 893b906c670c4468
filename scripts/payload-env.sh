#!/usr/bin/env bash
# Builds the Hugging Face payload's Python virtual environment at DIR from
# the pinned lock file scripts/payloads/requirements.txt (PyPI only, exact versions,
# --no-deps: nothing outside the file is resolved).
#
#   scripts/payload-env.sh DIR              create or update the environment
#   scripts/payload-env.sh --check DIR      exit 0 if DIR is up to date, 1 if not
#
# Idempotent: the sha256 of the lock file and the interpreter's version are
# stored in DIR/.slurmtune-payload.sha256 once the build and an import test
# succeed; a later call with the same pins does nothing. A build that stopped
# half-way leaves no stamp, so the next call starts that DIR afresh. Concurrent
# calls for one DIR wait on DIR.lock.
#
# It also compiles DeepSpeed's CPU ops (cpu_adam for optimizer offload, the
# shared-memory collective) into DIR/torch-extensions, so ranks do not each
# JIT-compile them at start: jobs set TORCH_EXTENSIONS_DIR=DIR/torch-extensions.
#
# On a cluster, put DIR on the filesystem the compute nodes share and point
# train.python and eval.python at DIR/bin/python.
#
# Env: PAYLOAD_PYTHON (interpreter to build from; default: the one DIR was
#      built with, else python3.11 or python3), PAYLOAD_REQUIREMENTS (another lock file), and pip's own
#      variables (PIP_FIND_LINKS for a local wheel cache, PIP_INDEX_URL for a
#      mirror of PyPI).
set -euo pipefail
PROG=payload-env
log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}

check_only=0
if [ "${1:-}" = --check ]; then
	check_only=1
	shift
fi
[ $# -eq 1 ] || die "usage: $0 [--check] DIR"
DIR=$1
case $DIR in /*) ;; *) DIR=$PWD/$DIR ;; esac
DIR=${DIR%/}
REQ=${PAYLOAD_REQUIREMENTS:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/scripts/payloads/requirements.txt}
[ -r "$REQ" ] || die "lock file $REQ not found"

PY=${PAYLOAD_PYTHON:-}
if [ -z "$PY" ] && [ -f "$DIR/.slurmtune-payload.sha256" ] && [ -x "$DIR/bin/python" ]; then
	# Unless told otherwise, keep the interpreter the environment was built with.
	PY=$(sed -n 's/^executable = //p' "$DIR/pyvenv.cfg" 2>/dev/null)
	[ -x "$PY" ] || PY=""
fi
if [ -z "$PY" ]; then
	PY=$(command -v python3.11 || command -v python3 || true)
	[ -n "$PY" ] || die "no python3 found: install Python 3.11 (Debian: apt-get install python3 python3-venv python3-dev)"
fi
pyver=$("$PY" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])') || die "$PY does not run"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || die "$PY is Python $pyver; the payload needs 3.10 or newer"

STAMP=$DIR/.slurmtune-payload.sha256
want="$(sha256sum "$REQ" | cut -d' ' -f1) python-$pyver"

up_to_date() {
	[ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$DIR/bin/python" ]
}

if [ "$check_only" = 1 ]; then
	up_to_date
	exit
fi
if up_to_date; then
	log "$DIR is up to date ($(basename "$REQ") ${want%% *})"
	exit 0
fi

install -d "$(dirname "$DIR")"
exec 9>"$DIR.lock"
if ! flock -n 9; then
	log "another payload-env.sh is building $DIR: waiting for it"
	flock -w 3600 9 || die "another payload-env.sh holds $DIR.lock"
fi
if up_to_date; then # built by the call we waited for
	log "$DIR is up to date ($(basename "$REQ") ${want%% *})"
	exit 0
fi

t0=$SECONDS
if [ -e "$DIR" ]; then
	# Replace only what this script built (a stamp, or a venv that never
	# got one): never an unrelated directory someone pointed us at.
	if [ -f "$STAMP" ] || [ -f "$DIR/pyvenv.cfg" ]; then
		log "rebuilding $DIR (pins or interpreter changed, or an earlier build did not finish)"
		rm -rf "$DIR"
	elif [ -n "$(ls -A "$DIR")" ]; then
		die "$DIR exists and is not a payload environment: remove it or pick another path"
	fi
fi
log "[1/4] creating a virtual environment at $DIR with $PY (Python $pyver)"
"$PY" -m venv "$DIR" || die "python -m venv failed (Debian: apt-get install python3-venv)"
n=$(grep -cE '^[A-Za-z0-9]' "$REQ")
log "[2/4] installing $n pinned packages from $(basename "$REQ") (first build downloads about 3.5 GB: torch and its CUDA libraries)"
set +e
"$DIR/bin/python" -m pip install --disable-pip-version-check --no-deps --progress-bar off \
	--prefer-binary -r "$REQ" 2>&1 | grep --line-buffered -vE '^\s*(Downloading|Using cached|Obtaining)' | sed -u "s/^/$PROG:   /" >&2
rc=${PIPESTATUS[0]}
set -e
[ "$rc" -eq 0 ] || die "pip install failed (exit $rc, see above)"
log "[3/4] checking the environment"
"$DIR/bin/python" -m pip check --disable-pip-version-check >&2 || die "pip check found missing or conflicting requirements"
"$DIR/bin/python" - <<'PY' >&2 || die "the payload packages do not import"
import torch, transformers, accelerate, deepspeed, peft, tokenizers, safetensors
print("payload-env:   torch %s, transformers %s, accelerate %s, deepspeed %s, peft %s, tokenizers %s, safetensors %s; CUDA available: %s" % (
    torch.__version__, transformers.__version__, accelerate.__version__, deepspeed.__version__,
    peft.__version__, tokenizers.__version__, safetensors.__version__, torch.cuda.is_available()))
PY
log "[4/4] building DeepSpeed's CPU ops (cpu_adam, shm comm) into $DIR/torch-extensions"
# Every rank of every job would otherwise JIT-compile them at start (minutes
# on a small node); jobs find them with TORCH_EXTENSIONS_DIR=DIR/torch-extensions.
# The CUDA ops are still built just in time on GPU nodes, which have nvcc.
# The two builds run side by side (one compiler each).
pids=()
for op in CPUAdamBuilder ShareMemCommBuilder; do
	TORCH_EXTENSIONS_DIR=$DIR/torch-extensions "$DIR/bin/python" -c '
import sys
from deepspeed.ops.op_builder import cpu
b = getattr(cpu, sys.argv[1])()
b.load(verbose=False)
print("payload-env:   built", b.name, flush=True)
' "$op" >"$DIR/.ops-build-$op.log" 2>&1 &
	pids+=($!)
done
failed=0
for i in "${!pids[@]}"; do
	wait "${pids[$i]}" || failed=1
done
for op in CPUAdamBuilder ShareMemCommBuilder; do
	grep '^payload-env:' "$DIR/.ops-build-$op.log" >&2 || { tail -n 20 "$DIR/.ops-build-$op.log" >&2; failed=1; }
done
[ "$failed" = 0 ] || die "building the DeepSpeed CPU ops failed (they need g++ and the Python headers: apt-get install g++ python3-dev)"
printf '%s\n' "$want" >"$STAMP"
log "built $DIR in $((SECONDS - t0)) s"
