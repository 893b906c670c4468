#!/usr/bin/env bash
# Older Debian userlands for the release tests: the release binaries must
# start on login nodes whose C library is older than this machine's.
#
#   scripts/old-userland.sh up     debootstrap each userland once (cached), print nothing
#   scripts/old-userland.sh env    shell exports naming them: eval "$(scripts/old-userland.sh env)"
#
# amd64: a full `debootstrap --variant=minbase` of $SLURMTUNE_OLD_SUITE, run
# with chroot. arm64: the first stage of `debootstrap --foreign --arch=arm64`
# (the suite's real arm64 packages, libc6 among them, unpacked; the second
# stage, which runs dpkg inside the chroot, needs binfmt_misc, which this
# machine does not have mounted), with Debian's qemu-aarch64-static copied in,
# run as `chroot DIR /usr/bin/qemu-aarch64-static PROG...`.
#
# The suite is the oldest one Debian's mirror (as configured in
# /etc/apt/sources.list.d) still serves: bullseye (glibc 2.31) when this was
# written; buster (2.28) is only on archive.debian.org.
#
# Each userland lives in $SLURMTUNE_OLD_USERLANDS/SUITE-ARCH (default
# /var/cache/slurmtune-test), outside the repository, and is made once: a
# finished one has a .complete stamp, so a second `make test` reuses it.
#
# Env: SLURMTUNE_OLD_SUITE (default bullseye), SLURMTUNE_OLD_USERLANDS,
# SLURMTUNE_DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail

PROG=old-userland
log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}

SUITE=${SLURMTUNE_OLD_SUITE:-bullseye}
ROOT=${SLURMTUNE_OLD_USERLANDS:-/var/cache/slurmtune-test}
ROOT=${ROOT%/}
MIRROR=${SLURMTUNE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
case $ROOT in /*) ;; *) die "SLURMTUNE_OLD_USERLANDS must be an absolute path" ;; esac

dir() { printf '%s/%s-%s' "$ROOT" "$SUITE" "$1"; }

# make ARCH: debootstrap one userland unless a complete one is cached.
make_userland() {
	local arch=$1 d tmp
	d=$(dir "$arch")
	[ -e "$d/.complete" ] && return 0
	[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, chroot)"
	local need=()
	command -v debootstrap >/dev/null || need+=(debootstrap)
	[ "$arch" = amd64 ] || [ -x /usr/bin/qemu-aarch64-static ] || need+=(qemu-user-static)
	if [ ${#need[@]} -gt 0 ]; then
		log "installing ${need[*]}"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	fi
	mkdir -p "$ROOT"
	# Build next to the final place and rename, so an interrupted run never
	# leaves something that looks finished.
	tmp="$d.tmp.$$"
	rm -rf "$tmp"
	log "debootstrap $SUITE $arch into $d (once; takes a few minutes)"
	local start=$SECONDS
	if [ "$arch" = amd64 ]; then
		debootstrap --variant=minbase "$SUITE" "$tmp" "$MIRROR" >"$tmp.log" 2>&1 ||
			{ tail -n 20 "$tmp.log" >&2; die "debootstrap $SUITE $arch failed (log: $tmp.log)"; }
	else
		debootstrap --foreign --arch="$arch" --variant=minbase "$SUITE" "$tmp" "$MIRROR" >"$tmp.log" 2>&1 ||
			{ tail -n 20 "$tmp.log" >&2; die "debootstrap --foreign $SUITE $arch failed (log: $tmp.log)"; }
		install -m 0755 /usr/bin/qemu-aarch64-static "$tmp/usr/bin/qemu-aarch64-static"
		# Without the second stage no package's maintainer scripts ran; the
		# C library and loader are unpacked, which is what a binary needs.
		[ -e "$tmp/lib/ld-linux-aarch64.so.1" ] || die "no arm64 loader in $tmp"
	fi
	rm -rf "$tmp/var/cache/apt/archives"/*.deb "$tmp/debootstrap/"*.deb 2>/dev/null || true
	date -u +%FT%TZ >"$tmp/.complete"
	rm -rf "$d"
	mv "$tmp" "$d"
	mv "$tmp.log" "$d.log"
	log "$SUITE $arch ready in $((SECONDS - start))s"
}

case ${1:-} in
up)
	make_userland amd64
	make_userland arm64
	;;
env)
	printf 'export SLURMTUNE_OLD_USERLAND_AMD64=%q\n' "$(dir amd64)"
	printf 'export SLURMTUNE_OLD_USERLAND_ARM64=%q\n' "$(dir arm64)"
	;;
*)
	echo "usage: $0 up|env" >&2
	exit 2
	;;
esac
