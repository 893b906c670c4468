#!/usr/bin/env bash
# `make release`: slurmtune for linux/amd64 and linux/arm64, with cgo
# (go-sqlite3 compiled in; go-nvml's libnvidia-ml dlopened at run time),
# linked against glibc $SLURMTUNE_GLIBC (default 2.17: RHEL/CentOS 7, and so
# RHEL/Rocky/Alma 8 and 9, Ubuntu 18.04 and newer, Debian 8 and newer) with
# zig's C compiler from PyPI.
#
# Writes to $DIST (default dist/):
#   slurmtune-linux-ARCH                       the bare binaries (what an upload copies)
#   slurmtune_VERSION_linux_ARCH.tar.gz        binary, README.md, LICENSE, completions/
#   SHA256SUMS                                 of the tarballs
#
# zig (ziglang==$ZIG_VERSION) is installed once into its own virtual
# environment under $SLURMTUNE_CACHE (default ~/.cache/slurmtune), with its
# compile cache next to it. The build is reproducible for a commit:
# -trimpath, no build id, the date stamped is the commit's (or
# $SOURCE_DATE_EPOCH), tarballs with fixed owners, order and times.
#
# Env: VERSION (default: git describe), SLURMTUNE_GLIBC, SLURMTUNE_CACHE,
# SLURMTUNE_RELEASE_ARCHES (default "amd64 arm64"), DIST, GO.
set -euo pipefail
cd "$(dirname "$0")/../.."
PROG=release
die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}
log() { printf '%s: %s\n' "$PROG" "$*" >&2; }

ZIG_VERSION=0.14.1
GO=${GO:-go}
GLIBC=${SLURMTUNE_GLIBC:-2.17}
CACHE=${SLURMTUNE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/slurmtune}
DIST=${DIST:-dist}
ARCHES=${SLURMTUNE_RELEASE_ARCHES:-amd64 arm64}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
COMMIT=$(git rev-parse HEAD 2>/dev/null || echo unknown)
EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
DATE=$(date -u -d "@$EPOCH" +%Y-%m-%dT%H:%M:%SZ)
FILE_VERSION=${VERSION#v}

command -v patchelf >/dev/null || die "patchelf not found (apt-get install patchelf)"
start=$SECONDS

# zig from PyPI, pinned, in its own virtual environment.
venv=$CACHE/ziglang-$ZIG_VERSION
if [ ! -e "$venv/.complete" ]; then
	log "installing ziglang==$ZIG_VERSION into $venv"
	rm -rf "$venv"
	mkdir -p "$CACHE"
	python3 -m venv "$venv"
	"$venv/bin/pip" install -q --disable-pip-version-check "ziglang==$ZIG_VERSION"
	touch "$venv/.complete"
fi
SLURMTUNE_ZIG=$("$venv/bin/python" -c 'import os, ziglang; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))')
export SLURMTUNE_ZIG
export ZIG_GLOBAL_CACHE_DIR=$CACHE/zig-cache ZIG_LOCAL_CACHE_DIR=$CACHE/zig-cache

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# NVML's symbols, for the link only (see scripts/release/zcc).
nvml_dir=$("$GO" list -m -f '{{.Dir}}' github.com/NVIDIA/go-nvml)
sed -nE 's/.*DECLDIR[^(]*[ *](nvml[A-Za-z0-9_]+) *\(.*/void \1(void) {}/p' "$nvml_dir/pkg/nvml/nvml.h" | sort -u >"$work/nvml_linkstub.c"

# zcc by name on PATH, so Go's build cache (which keys cgo packages on CC)
# is shared by every checkout.
export PATH=$PWD/scripts/release:$PATH
ldflags="-s -w -buildid= -X main.version=$VERSION -X main.commit=$COMMIT -X main.date=$DATE"
mkdir -p "$DIST"
rm -f "$DIST"/slurmtune_*_linux_*.tar.gz "$DIST/SHA256SUMS"
for arch in $ARCHES; do
	case $arch in
	amd64) triple=x86_64-linux-gnu.$GLIBC ;;
	arm64) triple=aarch64-linux-gnu.$GLIBC ;;
	*) die "unsupported architecture $arch (amd64, arm64)" ;;
	esac
	t0=$SECONDS
	stub=$work/linkstub-$arch
	mkdir -p "$stub"
	"$SLURMTUNE_ZIG" cc -target "$triple" -shared -Wl,-soname,libnvidia-ml.so.1 \
		-o "$stub/libnvidia-ml.so" "$work/nvml_linkstub.c"
	bin=$DIST/slurmtune-linux-$arch
	# The target is part of CC so that Go's build cache keys on it.
	CGO_ENABLED=1 GOOS=linux GOARCH=$arch CC="zcc $triple" SLURMTUNE_NVML_LINKSTUB=$stub \
		"$GO" build -trimpath -ldflags "$ldflags" -o "$bin" ./cmd/slurmtune 2> >(grep -v -e 'deprecated' -e 'DEPRECATED' -e 'note: declared here' -e '^ *[0-9]* | ' -e '^ *| ' -e 'cgo-gcc-prolog' -e 'warnings generated' -e '^# github.com/NVIDIA/go-nvml' >&2)
	patchelf --remove-needed libnvidia-ml.so.1 "$bin"
	log "built $bin (glibc $GLIBC) in $((SECONDS - t0))s"
done

# Completion scripts, from a build that runs here.
host=$DIST/slurmtune-linux-$("$GO" env GOHOSTARCH)
[ -x "$host" ] && "$host" --version >/dev/null 2>&1 || host=""
mkdir -p "$work/completions"
for sh in bash zsh fish; do
	out=$work/completions/slurmtune.$sh
	[ "$sh" = zsh ] && out=$work/completions/_slurmtune
	if [ -n "$host" ]; then
		"$host" completion "$sh" >"$out"
	else
		"$GO" run ./cmd/slurmtune completion "$sh" >"$out"
	fi
done

for arch in $ARCHES; do
	name=slurmtune_${FILE_VERSION}_linux_$arch
	stage=$work/$name
	mkdir -p "$stage"
	cp "$DIST/slurmtune-linux-$arch" "$stage/slurmtune"
	cp README.md LICENSE "$stage/"
	cp -r "$work/completions" "$stage/"
	tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$EPOCH" --mode='u+rw,go+rX,go-w' \
		-C "$stage" -cf - slurmtune README.md LICENSE completions | gzip -n -9 >"$DIST/$name.tar.gz"
done
(cd "$DIST" && sha256sum slurmtune_*_linux_*.tar.gz >SHA256SUMS)
log "version $VERSION, commit $COMMIT, date $DATE: $DIST/slurmtune_${FILE_VERSION}_linux_{${ARCHES// /,}}.tar.gz in $((SECONDS - start))s"
