#!/bin/sh
# Regenerates the REST transport's types from slurmrestd's OpenAPI documents:
# for each API version, slurm/rest/internal/gen/prunespec keeps the
# operations slurmtune uses (and applies the documented fixes) into
# slurm/rest/VERSION/openapi.json, then oapi-codegen writes
# slurm/rest/VERSION/types.gen.go from it.
#
#   scripts/gen-rest.sh              # all versions, then the adapters
#   scripts/gen-rest.sh v0041        # one (v0041 also rewrites its adapter)
#   scripts/gen-rest.sh adapters     # only slurm/rest/api0041.go, derived
#                                    # from api0040.go (edit that one)
#   go generate ./slurm/rest/...     # the same, through go:generate
#
# Sources: v0.0.38 is slurm/rest/v0038/source-22.05.8-live.json (GET
# /openapi/v3 from Slurm 22.05.8's slurmrestd with openapi/v0.0.38 and
# openapi/dbv0.0.38 loaded); v0.0.40 and v0.0.41 are Slurm 24.05.2's
# document, looked for in $SLURM_OPENAPI_DIR, else ../shared/slurm-openapi
# beside the repository.
set -eu

OAPI_CODEGEN=github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@v2.8.2

root=$(cd "$(dirname "$0")/.." && pwd)
spec_dir=${SLURM_OPENAPI_DIR:-$root/../shared/slurm-openapi}
[ $# -gt 0 ] || set -- v0038 v0040 v0041

adapters() {
	(cd "$root" && go run ./slurm/rest/internal/gen/adapter)
	echo "gen-rest: slurm/rest/api0041.go from api0040.go"
}
if [ "$*" = adapters ]; then
	adapters
	exit 0
fi

for v in "$@"; do
	case $v in
	v0038) src=$root/slurm/rest/v0038/source-22.05.8-live.json ;;
	v0040 | v0041) src=$spec_dir/slurm-24.05.2-openapi.yaml ;;
	*)
		echo "gen-rest: unknown API version $v (want v0038, v0040 or v0041)" >&2
		exit 2
		;;
	esac
	if [ ! -f "$src" ]; then
		echo "gen-rest: $src not found (set SLURM_OPENAPI_DIR to the folder holding slurm-24.05.2-openapi.yaml)" >&2
		exit 1
	fi
	(cd "$root" && go run ./slurm/rest/internal/gen/prunespec -profile "$v" -in "$src" -out "slurm/rest/$v/openapi.json")
	(cd "$root/slurm/rest/$v" && go run "$OAPI_CODEGEN" -config oapi-codegen.yaml openapi.json)
	echo "gen-rest: slurm/rest/$v: openapi.json, types.gen.go"
	[ "$v" != v0041 ] || adapters
done
