#!/usr/bin/env bash
# A Docker engine and a base image for the container-image test (tests/deploy/test_image.py), with
# its state next to the database servers' in the services directory.
#
# Usage: scripts/docker-engine.sh start|stop|env
#
#   start  install docker.io and debootstrap when missing; reuse an engine that answers, or start
#          dockerd with its own data root, exec root, socket, pid file and log (--iptables=false
#          --bridge=none: no registry, no bridge network); build the base image once; write
#          $OSC_SERVICES_DIR/docker.env (DOCKER_HOST, OSCTL_TEST_BASE_IMAGE, OSCTL_TEST_BUILD_ARGS).
#          Where no engine can run here (no permission, no cgroups, no network for debootstrap...),
#          it warns, writes the reason as OSCTL_TEST_DOCKER_UNAVAILABLE and exits 0: the image test
#          then skips with that reason and `make test` goes on.
#   stop   stop the dockerd this script started; its images stay for the next start.
#   env    print docker.env (`. .services/docker.env`).
#
# No registry is reachable, so the base image (Debian bookworm with python3 and python3-venv, what
# the Dockerfile's BASE_IMAGE needs) is a debootstrap root filesystem imported with `docker import`.
# Behind a TLS-intercepting proxy the host's extra CAs (/usr/local/share/ca-certificates) are
# trusted inside it, and pip inside the build is pointed at the system bundle (PIP_CERT).
#
# Environment (all optional):
#   OSC_SERVICES_DIR            state directory (default: <repo>/.services)
#   OSC_DOCKER                  `off`: start nothing, write docker.env saying so
#   OSC_DOCKER_BASE_IMAGE       base image tag (default local/bookworm-python:osctl)
#   OSC_DEBIAN_MIRROR           mirror for debootstrap (default: the host's bookworm apt source)
#   OSC_DOCKER_TIMEOUT          seconds to wait for dockerd to answer (default 60)
#   OSC_DOCKER_BUILD_TIMEOUT    seconds debootstrap may take (default 900)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${OSC_SERVICES_DIR:-$REPO/.services}
case $STATE in
/*) ;;
*) STATE=$PWD/$STATE ;;
esac
STATE=${STATE%/}

BASE_IMAGE=${OSC_DOCKER_BASE_IMAGE:-local/bookworm-python:osctl}
TIMEOUT=${OSC_DOCKER_TIMEOUT:-60}
BUILD_TIMEOUT=${OSC_DOCKER_BUILD_TIMEOUT:-900}
SUITE=bookworm # the Dockerfile expects bookworm's Python 3.11 as python3
EXTRA_CA_DIR=/usr/local/share/ca-certificates
PIP_CERT_ARG=PIP_CERT=/etc/ssl/certs/ca-certificates.crt
CA_LABEL=org.osctl.extra-ca-sha256

DOCKER_DIR=$STATE/docker
LOG_DIR=$STATE/logs
ENV_FILE=$STATE/docker.env
PIDFILE=$DOCKER_DIR/dockerd.pid
DOCKERD_LOG=$LOG_DIR/dockerd.log
# Unix socket paths are limited to 107 bytes and containerd puts its sockets under the exec root:
# with a deep state directory both go under /tmp (the rule scripts/services.sh follows).
if ((${#STATE} <= 70)); then
	RUN_DIR=$STATE/run/docker
else
	RUN_DIR=/tmp/osc-services-$(printf '%s' "$STATE" | cksum | cut -d' ' -f1)/docker
fi
SOCKET=$RUN_DIR/docker.sock
OWN_HOST=unix://$SOCKET

log() { printf '[docker-engine] %s\n' "$*"; }
warn() { printf '[docker-engine] WARNING: %s\n' "$*" >&2; }

die() {
	printf '[docker-engine] ERROR: %s\n' "$*" >&2
	exit 1
}

show_log() { # <file>: the last lines, where a reader of CI output sees them
	[[ -s $1 ]] || return 0
	printf '[docker-engine] ---- last 30 lines of %s ----\n' "$1" >&2
	tail -n 30 "$1" >&2
	printf '[docker-engine] ----\n' >&2
}

# One line of a log that explains a failure: its last line mentioning an error, else its last line.
log_reason() { # <file>
	local line
	line=$(grep -aiE 'error|fail|denied|not permitted|cannot|unable' "$1" 2>/dev/null | tail -n 1 || true)
	[[ -n $line ]] || line=$(tail -n 1 "$1" 2>/dev/null || true)
	printf '%s' "${line:0:300}"
}

write_env() { # <line>...: docker.env replaced in one step, so a reader never sees half of it
	mkdir -p "$STATE"
	local tmp=$ENV_FILE.tmp.$$
	{
		echo "# written by scripts/docker-engine.sh start; for tests/deploy/test_image.py"
		printf '%s\n' "$@"
	} >"$tmp"
	chmod 0644 "$tmp"
	mv -f "$tmp" "$ENV_FILE"
}

# No engine here: say why, on the terminal and to the test, and let `make test` go on.
unavailable() { # <reason> [log file]
	warn "the container-image test will be skipped: $1"
	[[ -z ${2:-} ]] || show_log "$2"
	write_env "export OSCTL_TEST_DOCKER_UNAVAILABLE=$(printf '%q' "$1")"
	exit 0
}

# ---------------------------------------------------------------------------------------------------
# packages

ensure_packages() {
	local pkgs=()
	command -v dockerd >/dev/null 2>&1 && command -v docker >/dev/null 2>&1 || pkgs+=(docker.io)
	command -v debootstrap >/dev/null 2>&1 || pkgs+=(debootstrap)
	((${#pkgs[@]} == 0)) && return 0
	[[ $(id -u) -eq 0 ]] || unavailable "${pkgs[*]} missing, and installing them needs root"
	log "installing missing packages: ${pkgs[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# DPkg::Lock::Timeout: wait for another apt/dpkg run (scripts/services.sh) instead of failing.
	if ! {
		apt-get -o DPkg::Lock::Timeout=600 -qq update &&
			apt-get -o DPkg::Lock::Timeout=600 -y -q --no-install-recommends install "${pkgs[@]}" </dev/null
	}; then
		unavailable "apt-get could not install ${pkgs[*]}"
	fi
}

# ---------------------------------------------------------------------------------------------------
# dockerd

unmount_under() { # <dir>: every mount at or below it, deepest first
	local mounts
	mounts=$(awk -v root="$1/" 'index($2 "/", root) == 1 { print $2 }' /proc/self/mounts | sort -r)
	[[ -z $mounts ]] || xargs -r -n1 umount -l <<<"$mounts" || true
}

# dockerd bind-mounts its data root onto itself and keeps network namespaces under its exec root;
# one that died or was killed leaves them behind, and `rm -rf .services` would then fail.
release_mounts() {
	unmount_under "$DOCKER_DIR/data"
	unmount_under "$RUN_DIR/exec"
}

answers() { # <docker host>
	DOCKER_HOST=$1 timeout 20 docker info --format '{{.ServerVersion}}' >/dev/null 2>&1
}

# PID of the dockerd started with our pid file, or nothing.
own_pid() {
	[[ -s $PIDFILE ]] || return 0
	local pid cmd
	pid=$(<"$PIDFILE")
	[[ $pid =~ ^[0-9]+$ ]] || return 0
	cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 0
	[[ $cmd == *dockerd*"--pidfile $PIDFILE"* ]] && printf '%s' "$pid"
	return 0
}

start_dockerd() {
	[[ $(id -u) -eq 0 ]] || unavailable "no Docker engine answers and dockerd needs root to start"
	mkdir -p "$DOCKER_DIR/data" "$RUN_DIR/exec" "$LOG_DIR"
	chmod 0700 "$DOCKER_DIR" "$RUN_DIR"
	# Our own (empty) config file, so a host /etc/docker/daemon.json cannot clash with these flags.
	[[ -f $DOCKER_DIR/daemon.json ]] || echo '{}' >"$DOCKER_DIR/daemon.json"
	printf '\n==== %s dockerd start ====\n' "$(date -u +%FT%TZ)" >>"$DOCKERD_LOG"
	log "starting dockerd on $OWN_HOST (log: $DOCKERD_LOG)"
	# setsid: own session, outlives this script and a Ctrl-C in make; 9>&-: not the lock.
	setsid dockerd \
		--config-file "$DOCKER_DIR/daemon.json" \
		--data-root "$DOCKER_DIR/data" \
		--exec-root "$RUN_DIR/exec" \
		--pidfile "$PIDFILE" \
		-H "$OWN_HOST" \
		--iptables=false --bridge=none \
		</dev/null >>"$DOCKERD_LOG" 2>&1 9>&- &
	local launcher=$! deadline=$((SECONDS + TIMEOUT))
	until answers "$OWN_HOST"; do
		if ! kill -0 "$launcher" 2>/dev/null; then
			release_mounts
			unavailable "dockerd exited at start: $(log_reason "$DOCKERD_LOG") (log: $DOCKERD_LOG)" "$DOCKERD_LOG"
		fi
		if ((SECONDS >= deadline)); then
			terminate "$launcher" 10
			unavailable "dockerd did not answer within ${TIMEOUT}s: $(log_reason "$DOCKERD_LOG") (log: $DOCKERD_LOG)" "$DOCKERD_LOG"
		fi
		sleep 0.2
	done
	log "dockerd $(DOCKER_HOST=$OWN_HOST docker info --format '{{.ServerVersion}}, storage driver {{.Driver}}') is up"
}

# SIGTERM: dockerd stops its containers and its containerd before it exits. SIGKILL after <seconds>
# leaves that containerd running: end it by its own pid file.
terminate() { # <pid> <seconds>
	local pid=$1 deadline=$((SECONDS + $2)) containerd
	kill -TERM "$pid" 2>/dev/null || true
	while kill -0 "$pid" 2>/dev/null; do
		if ((SECONDS >= deadline)); then
			warn "dockerd $pid still running after $2s: SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			containerd=$(cat "$RUN_DIR/exec/containerd/containerd.pid" 2>/dev/null || true)
			if [[ $containerd =~ ^[0-9]+$ ]] &&
				tr '\0' ' ' <"/proc/$containerd/cmdline" 2>/dev/null | grep -qF -- "--config $RUN_DIR/exec/"; then
				kill -KILL "$containerd" 2>/dev/null || true
			fi
			break
		fi
		sleep 0.2
	done
	release_mounts
}

stop_dockerd() {
	local pid
	pid=$(own_pid)
	if [[ -z $pid ]]; then
		log "dockerd: not running"
		return 0
	fi
	terminate "$pid" 60
	log "dockerd: stopped"
}

# The engine the test will use: ours when it runs, else one already answering, else a new one of ours.
choose_engine() {
	if [[ -n $(own_pid) ]] && answers "$OWN_HOST"; then
		log "dockerd already running on $OWN_HOST (reused)"
		ENGINE=$OWN_HOST
	elif answers "${DOCKER_HOST:-unix:///var/run/docker.sock}"; then
		ENGINE=${DOCKER_HOST:-unix:///var/run/docker.sock}
		log "using the Docker engine that answers on $ENGINE"
	else
		start_dockerd
		ENGINE=$OWN_HOST
	fi
	export DOCKER_HOST=$ENGINE
}

# Every image test leaves an untagged builder stage behind (the Python venv: ~150 MB); on our own
# engine drop those older than a day. Younger ones may belong to a build running right now.
prune_old_layers() {
	[[ $ENGINE == "$OWN_HOST" ]] || return 0
	local freed
	freed=$(docker image prune --force --filter until=24h 2>&1 | sed -n 's/^Total reclaimed space: //p')
	[[ -z $freed || $freed == 0B ]] || log "pruned untagged images older than 24h: $freed"
}

# ---------------------------------------------------------------------------------------------------
# base image

extra_cas() { find "$EXTRA_CA_DIR" -type f -name '*.crt' 2>/dev/null | LC_ALL=C sort; }

# Fingerprint of the host's extra CAs, stored on the image: new CAs mean a new base image.
ca_fingerprint() {
	local files
	mapfile -t files < <(extra_cas)
	((${#files[@]} == 0)) && return 0
	cat "${files[@]}" | sha256sum | cut -d' ' -f1
}

# The host's apt source for $SUITE (one-line and deb822 formats), else deb.debian.org.
debian_mirror() {
	if [[ -n ${OSC_DEBIAN_MIRROR:-} ]]; then
		printf '%s' "$OSC_DEBIAN_MIRROR"
		return 0
	fi
	local mirror
	mirror=$(
		{
			sed -n -E 's/^[[:space:]]*deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+)[[:space:]]+([^[:space:]]+).*/\2 \3/p' \
				/etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true
			awk 'BEGIN { RS = "" } {
				uri = ""; suites = ""; deb = 0
				n = split($0, lines, "\n")
				for (i = 1; i <= n; i++) {
					if (lines[i] ~ /^Types:/ && lines[i] ~ /[[:space:]]deb([[:space:]]|$)/) deb = 1
					if (lines[i] ~ /^URIs:/) { split(lines[i], u, /[[:space:]]+/); uri = u[2] }
					if (lines[i] ~ /^Suites:/) { suites = lines[i]; sub(/^Suites:[[:space:]]*/, "", suites) }
				}
				if (deb && uri != "") { m = split(suites, s, /[[:space:]]+/); for (j = 1; j <= m; j++) print uri, s[j] }
			}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true
		} | awk -v suite="$SUITE" '$2 == suite { print $1; exit }'
	)
	printf '%s' "${mirror:-http://deb.debian.org/debian}"
}

ROOTFS=""

# debootstrap bind-mounts /dev, /proc and /sys into the root filesystem: unmount before removing
# anything, and never cross into another file system.
remove_rootfs() {
	[[ -n $ROOTFS && -d $ROOTFS ]] || return 0
	unmount_under "$ROOTFS"
	rm -rf --one-file-system "$ROOTFS"
}

build_base_image() {
	local fingerprint have
	fingerprint=$(ca_fingerprint)
	if have=$(docker image inspect --format "{{index .Config.Labels \"$CA_LABEL\"}}" "$BASE_IMAGE" 2>/dev/null); then
		if [[ $have == "$fingerprint" ]]; then
			log "base image $BASE_IMAGE: present (reused)"
			return 0
		fi
		log "base image $BASE_IMAGE: the host's extra CAs changed, rebuilding it"
	fi
	[[ $(id -u) -eq 0 ]] || unavailable "the base image $BASE_IMAGE is missing and debootstrap needs root"
	local mirror t0=$SECONDS blog=$LOG_DIR/docker-base-image.log
	mirror=$(debian_mirror)
	ROOTFS=$DOCKER_DIR/rootfs.$$
	trap remove_rootfs EXIT
	remove_rootfs
	log "base image $BASE_IMAGE: debootstrap $SUITE from $mirror (log: $blog)"
	: >"$blog"
	timeout "$BUILD_TIMEOUT" debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
		"$SUITE" "$ROOTFS" "$mirror" >>"$blog" 2>&1 ||
		unavailable "debootstrap of the base image failed: $(log_reason "$blog") (log: $blog)" "$blog"
	if [[ -n $fingerprint ]]; then
		log "base image $BASE_IMAGE: trusting the host's extra CAs from $EXTRA_CA_DIR"
		mkdir -p "$ROOTFS$EXTRA_CA_DIR"
		cp -R "$EXTRA_CA_DIR/." "$ROOTFS$EXTRA_CA_DIR/"
		chroot "$ROOTFS" update-ca-certificates >>"$blog" 2>&1 ||
			unavailable "update-ca-certificates in the base image failed (log: $blog)" "$blog"
	fi
	# The Dockerfile runs apt-get update itself: no package lists or .debs in the image.
	rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/archives/*.deb
	tar --numeric-owner -C "$ROOTFS" -c . | docker import \
		--change "LABEL $CA_LABEL=$fingerprint" \
		--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change 'CMD ["/bin/bash"]' \
		--message "debootstrap --variant=minbase $SUITE $mirror + python3 python3-venv ca-certificates" \
		- "$BASE_IMAGE" >>"$blog" 2>&1 ||
		unavailable "docker import of the base image failed: $(log_reason "$blog") (log: $blog)" "$blog"
	remove_rootfs
	trap - EXIT
	log "base image $BASE_IMAGE: built in $((SECONDS - t0))s"
}

# ---------------------------------------------------------------------------------------------------
# commands

lock_state() {
	mkdir -p "$DOCKER_DIR"
	exec 9>"$DOCKER_DIR/.lock"
	flock -w 1200 9 || die "another '$0' run holds $DOCKER_DIR/.lock"
}

cmd_start() {
	[[ ${OSC_DOCKER:-} != off ]] || unavailable "OSC_DOCKER=off: no Docker engine started"
	local t0=$SECONDS
	lock_state
	ensure_packages
	choose_engine
	prune_old_layers
	build_base_image
	local lines=(
		"export DOCKER_HOST=$(printf '%q' "$ENGINE")"
		"export OSCTL_TEST_BASE_IMAGE=$(printf '%q' "$BASE_IMAGE")"
		"unset OSCTL_TEST_DOCKER_UNAVAILABLE"
	)
	# pip in the build trusts certifi's bundle, not the system one that holds the proxy's CA.
	[[ -z $(ca_fingerprint) ]] || lines+=("export OSCTL_TEST_BUILD_ARGS=$PIP_CERT_ARG")
	write_env "${lines[@]}"
	log "ready in $((SECONDS - t0))s; environment: $ENV_FILE"
}

cmd_stop() {
	[[ -d $DOCKER_DIR ]] || {
		log "nothing to stop ($DOCKER_DIR does not exist)"
		return 0
	}
	lock_state
	stop_dockerd
}

cmd_env() {
	[[ -f $ENV_FILE ]] || die "$ENV_FILE does not exist: run '$0 start' first"
	cat "$ENV_FILE"
}

case ${1:-} in
start) cmd_start ;;
stop) cmd_stop ;;
env) cmd_env ;;
*)
	echo "usage: $0 start|stop|env" >&2
	exit 2
	;;
esac
