# shellcheck shell=bash
# Helpers shared by scripts/dev-cluster.sh and scripts/dev-sshd.sh.
# Sourced, not executed. Callers set PROG and PIDS (the pid-record dir).
#
# Every daemon is started in its own session, in the foreground (-D / -F),
# and recorded as "PID STARTTIME" (starttime from /proc/PID/stat), so a
# recycled pid is never mistaken for our daemon and nothing is ever stopped
# by name.

PROG=${PROG:-$(basename "$0")}
STARTED=()

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}

need_root() {
	[ "$(id -u)" -eq 0 ] || die "must run as root"
}

# show_log_tail FILE [LINES]: print the end of a log to stderr.
show_log_tail() {
	local f=$1 n=${2:-30}
	if [ -s "$f" ]; then
		printf '%s: ---- last %s lines of %s ----\n' "$PROG" "$n" "$f" >&2
		tail -n "$n" "$f" | sed 's/^/    /' >&2
		printf '%s: ----\n' "$PROG" >&2
	else
		printf '%s: (log %s is empty or missing)\n' "$PROG" "$f" >&2
	fi
}

# proc_starttime PID: print the start time of a live (non-zombie) process.
proc_starttime() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	# shellcheck disable=SC2086 # split the stat fields on purpose
	set -- $stat
	[ "$1" != Z ] && [ "$1" != X ] || return 1
	printf '%s\n' "${20}"
}

# pid_alive PID STARTTIME
pid_alive() {
	local cur
	cur=$(proc_starttime "$1") && [ "$cur" = "$2" ]
}

# record_pid NAME PID
record_pid() {
	local st
	st=$(proc_starttime "$2") || return 1
	printf '%s %s\n' "$2" "$st" >"$PIDS/$1.tmp"
	mv -f "$PIDS/$1.tmp" "$PIDS/$1"
}

# recorded_pid NAME: print the pid if the recorded process still runs.
recorded_pid() {
	local f="$PIDS/$1" pid="" st=""
	[ -f "$f" ] || return 1
	read -r pid st <"$f" || true
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	pid_alive "$pid" "$st" || return 1
	printf '%s\n' "$pid"
}

# spawn NAME LOGFILE CMD...: start CMD in a new session (setsid does not fork
# here because a background job of a script is not a process-group leader),
# detached from our stdio and from the lock on fd 9, in / (a daemon must not
# keep the caller's directory: when that is removed, slurmrestd dies on its
# next submission and slurmstepd complains in every job's log); record its
# pid. LOGFILE and CMD's paths must be absolute.
spawn() {
	local name=$1 logf=$2 pid
	shift 2
	(cd / && exec setsid "$@" </dev/null >>"$logf" 2>&1 9>&-) &
	pid=$!
	if ! record_pid "$name" "$pid"; then
		show_log_tail "$logf"
		die "$name exited at once"
	fi
	STARTED+=("$name")
}

# stop_recorded NAME [TIMEOUT_S]: TERM the recorded process, wait, then KILL.
stop_recorded() {
	local name=$1 t=${2:-20} pid st i
	if pid=$(recorded_pid "$name"); then
		read -r _ st <"$PIDS/$name"
		log "stopping $name (pid $pid)"
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < t * 10; i++)); do
			pid_alive "$pid" "$st" || break
			sleep 0.1
		done
		if pid_alive "$pid" "$st"; then
			warn "$name (pid $pid) ignored SIGTERM for ${t}s; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			for ((i = 0; i < 50; i++)); do
				pid_alive "$pid" "$st" || break
				sleep 0.1
			done
		fi
	fi
	rm -f "$PIDS/$name"
}

# wait_until TIMEOUT_S CMD...: poll CMD every 0.5 s until it succeeds.
wait_until() {
	local t=$1 end
	shift
	end=$((SECONDS + t))
	until "$@" >/dev/null 2>&1; do
		[ "$SECONDS" -lt "$end" ] || return 1
		sleep 0.5
	done
}

# wait_ready NAME TIMEOUT_S CMD...: like wait_until, but give up at once if
# the recorded process NAME exits. Sets WAIT_WHY to "exited" or "timed out".
# shellcheck disable=SC2034 # read by callers
WAIT_WHY=""
wait_ready() {
	local name=$1 t=$2 end
	shift 2
	end=$((SECONDS + t))
	until "$@" >/dev/null 2>&1; do
		if ! recorded_pid "$name" >/dev/null; then
			# shellcheck disable=SC2034
			WAIT_WHY="exited"
			return 1
		fi
		if [ "$SECONDS" -ge "$end" ]; then
			# shellcheck disable=SC2034
			WAIT_WHY="timed out after ${t}s"
			return 1
		fi
		sleep 0.5
	done
}

# install_content PATH MODE [OWNER]: write stdin to PATH atomically, only if it
# differs. Sets CHANGED=1 when the file was created or changed.
install_content() {
	local path=$1 mode=$2 owner=${3:-root:root} tmp
	tmp=$(mktemp "$path.XXXXXX")
	cat >"$tmp"
	chmod "$mode" "$tmp"
	chown "$owner" "$tmp"
	if [ -f "$path" ] && cmp -s "$tmp" "$path" &&
		[ "$(stat -c '%a %U:%G' "$path")" = "$(stat -c '%a %U:%G' "$tmp")" ]; then
		rm -f "$tmp"
		return 0
	fi
	mv -f "$tmp" "$path"
	# shellcheck disable=SC2034 # read by the caller
	CHANGED=1
}

# missing_packages PKG...: print the packages that are not installed.
missing_packages() {
	local p
	for p in "$@"; do
		if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
			printf '%s\n' "$p"
		fi
	done
}

# ensure_packages PKG...: apt-get update + install, only when something is missing.
ensure_packages() {
	local missing
	mapfile -t missing < <(missing_packages "$@")
	[ "${#missing[@]}" -gt 0 ] || return 0
	log "installing missing packages: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# Keep the packages' scripts from starting their services (a system
	# MariaDB on :3306, munged, slurmctld): we start our own, by pid.
	local policy=/usr/sbin/policy-rc.d own_policy=0
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod +x "$policy"
		own_policy=1
	fi
	local rc=0
	apt-get -o DPkg::Lock::Timeout=600 update -qq >&2 || rc=1
	if [ "$rc" = 0 ]; then
		apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
			-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
			"${missing[@]}" >&2 || rc=2
	fi
	[ "$own_policy" = 0 ] || rm -f "$policy"
	case $rc in
	1) die "apt-get update failed" ;;
	2) die "apt-get install ${missing[*]} failed" ;;
	esac
}
