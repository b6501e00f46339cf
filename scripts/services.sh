#!/usr/bin/env bash
# Local database servers for development and CI:
#   PostgreSQL 15 primary + streaming replica, MariaDB 10.11 primary + GTID replica,
# all on 127.0.0.1, with their data, sockets, pid files and logs in one state directory.
#
# Usage: scripts/services.sh start|stop|status|env
#
#   start   install missing packages (apt-get), initialise what does not exist yet, start what is
#           not running, wait until every server answers, write $OSC_SERVICES_DIR/env.
#           Idempotent: running servers are reused, existing data directories are never re-initialised.
#   stop    stop the four servers this script started (pid files / pg_ctl on its own data dirs).
#   status  print up/down for each server (exit 0 when all four are up, 3 otherwise).
#   env     print the env file (`. .services/env` or `eval "$(scripts/services.sh env)"`).
#
# Environment (all optional):
#   OSC_SERVICES_DIR      state directory (default: <repo>/.services)
#   PG_PRIMARY_PORT       55432        PG_REPLICA_PORT       55433
#   MYSQL_PRIMARY_PORT    53306        MYSQL_REPLICA_PORT    53307
#   OSC_SERVICES_TIMEOUT  seconds to wait for each server to become ready (default 60)
#
# Must run as root (PostgreSQL commands run as the `postgres` user through runuser).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${OSC_SERVICES_DIR:-$REPO/.services}
case $STATE in
/*) ;;
*) STATE=$PWD/$STATE ;;
esac
STATE=${STATE%/}

PG_PRIMARY_PORT=${PG_PRIMARY_PORT:-55432}
PG_REPLICA_PORT=${PG_REPLICA_PORT:-55433}
MYSQL_PRIMARY_PORT=${MYSQL_PRIMARY_PORT:-53306}
MYSQL_REPLICA_PORT=${MYSQL_REPLICA_PORT:-53307}
TIMEOUT=${OSC_SERVICES_TIMEOUT:-60}

PG_BIN=/usr/lib/postgresql/15/bin
PG_DIR=$STATE/pg
MY_DIR=$STATE/mariadb
LOG_DIR=$STATE/logs
ENV_FILE=$STATE/env
MYSQL_ROOT_PASSWORD_FILE=$STATE/mysql-root-password
MYSQL_REPL_PASSWORD_FILE=$STATE/mysql-repl-password
PG_SLOT=osc_replica
MYSQL_REPL_USER=repl

# Unix socket paths are limited to 107 bytes: with a deep state directory, put the sockets under /tmp.
if ((${#STATE} <= 70)); then
	RUN_DIR=$STATE/run
else
	RUN_DIR=/tmp/osc-services-$(printf '%s' "$STATE" | cksum | cut -d' ' -f1)
fi
PG_SOCK_DIR=$RUN_DIR/pg
MY_SOCK_DIR=$RUN_DIR/mariadb

# ---------------------------------------------------------------------------------------------------
# helpers

log() { printf '[services] %s\n' "$*"; }
warn() { printf '[services] WARNING: %s\n' "$*" >&2; }

die() {
	printf '[services] ERROR: %s\n' "$1" >&2
	local f
	for f in "${@:2}"; do
		if [[ -s $f ]]; then
			printf '[services] ---- last 40 lines of %s ----\n' "$f" >&2
			tail -n 40 "$f" >&2
			printf '[services] ----\n' >&2
		fi
	done
	exit 1
}

require_root() {
	[[ $(id -u) -eq 0 ]] || die "must run as root (PostgreSQL runs as 'postgres' via runuser, MariaDB as root)"
}

validate_ports() {
	local p
	for p in "$PG_PRIMARY_PORT" "$PG_REPLICA_PORT" "$MYSQL_PRIMARY_PORT" "$MYSQL_REPLICA_PORT"; do
		if ! [[ $p =~ ^[0-9]+$ ]] || ((p < 1 || p > 65535)); then
			die "invalid port: '$p'"
		fi
	done
	local sorted
	sorted=$(printf '%s\n' "$PG_PRIMARY_PORT" "$PG_REPLICA_PORT" "$MYSQL_PRIMARY_PORT" "$MYSQL_REPLICA_PORT" | sort -u | wc -l)
	((sorted == 4)) || die "the four ports must differ"
}

# Something accepts TCP connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_until <what> <logfile> <cmd...>: poll cmd every 0.1 s for up to $TIMEOUT seconds.
wait_until() {
	local what=$1 logfile=$2
	shift 2
	local deadline=$((SECONDS + TIMEOUT))
	until "$@"; do
		((SECONDS < deadline)) || die "$what: not ready after ${TIMEOUT}s" "$logfile"
		sleep 0.1
	done
}

# A random secret kept in a 0600 file and reused on later runs.
secret() {
	local f=$1
	if [[ ! -s $f ]]; then
		(
			umask 077
			od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >"$f.tmp"
			mv -f "$f.tmp" "$f"
		)
	fi
	chmod 600 "$f"
	cat "$f"
}

# Create a log file that `postgres` can append to (never truncate an existing one).
pg_logfile() {
	local f=$LOG_DIR/$1
	[[ -e $f ]] || : >"$f"
	chown postgres:postgres "$f"
	chmod 0640 "$f"
	printf '%s' "$f"
}

# ---------------------------------------------------------------------------------------------------
# packages

ensure_packages() {
	local pkgs=()
	[[ -x $PG_BIN/postgres && -x $PG_BIN/pg_basebackup ]] || pkgs+=(postgresql postgresql-contrib)
	command -v mariadbd >/dev/null 2>&1 || [[ -x /usr/sbin/mariadbd ]] || pkgs+=(mariadb-server)
	command -v mariadb >/dev/null 2>&1 && command -v mariadb-install-db >/dev/null 2>&1 || pkgs+=(mariadb-client mariadb-server)
	command -v pt-online-schema-change >/dev/null 2>&1 || pkgs+=(percona-toolkit)
	command -v prometheus >/dev/null 2>&1 || pkgs+=(prometheus) # tests start their own, on loopback
	command -v chromium >/dev/null 2>&1 || pkgs+=(chromium) # the status page tests drive it headless
	((${#pkgs[@]} == 0)) && return 0
	mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | sort -u)
	log "installing missing packages: ${pkgs[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# DPkg::Lock::Timeout: wait for another apt/dpkg run instead of failing on its lock.
	apt-get -o DPkg::Lock::Timeout=600 -qq update
	apt-get -o DPkg::Lock::Timeout=600 -y -q --no-install-recommends install "${pkgs[@]}" </dev/null
	[[ -x $PG_BIN/postgres ]] || die "PostgreSQL 15 is still missing after apt-get install ($PG_BIN/postgres)"
}

find_tools() {
	MARIADBD=$(command -v mariadbd 2>/dev/null || true)
	[[ -n $MARIADBD ]] || MARIADBD=/usr/sbin/mariadbd
	[[ -x $MARIADBD ]] || die "mariadbd not found"
	MARIADB=$(command -v mariadb) || die "mariadb client not found"
	MARIADB_ADMIN=$(command -v mariadb-admin) || die "mariadb-admin not found"
	MARIADB_INSTALL_DB=$(command -v mariadb-install-db) || die "mariadb-install-db not found"
}

# ---------------------------------------------------------------------------------------------------
# directories

prepare_dirs() {
	# Change the mode of the state directory only when creating it (it may be a shared directory).
	if [[ ! -d $STATE ]]; then
		mkdir -p "$STATE"
		chmod 0755 "$STATE"
	fi
	mkdir -p "$LOG_DIR" "$MY_DIR" "$RUN_DIR" "$MY_SOCK_DIR"
	chmod 0755 "$LOG_DIR" "$RUN_DIR"
	chmod 0700 "$MY_DIR" "$MY_SOCK_DIR" # root-only: root@localhost has no password on the socket
	mkdir -p "$PG_DIR" "$PG_SOCK_DIR"
	chown postgres:postgres "$PG_DIR" "$PG_SOCK_DIR"
	chmod 0700 "$PG_DIR"
	chmod 0755 "$PG_SOCK_DIR"
	ensure_traversable "$STATE"
	ensure_traversable "$RUN_DIR"
}

# `postgres` must be able to reach its directories: add o+x to parents that lack it.
ensure_traversable() {
	local target=$1 p
	runuser -u postgres -- test -x "$target" && return 0
	p=$target
	while [[ -n $p && $p != / ]]; do
		if (((8#$(stat -c %a "$p") & 1) == 0)); then
			log "chmod o+x $p (so that the postgres user can reach $target)"
			chmod o+x "$p"
		fi
		p=$(dirname "$p")
	done
	runuser -u postgres -- test -x "$target" || die "the postgres user cannot reach $target"
}

# ---------------------------------------------------------------------------------------------------
# PostgreSQL

pg_cmd() { (cd / && runuser -u postgres -- "$@"); }

pg_psql() { # <port> <sql>
	"$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -U postgres -d postgres -tA -c "$2"
}

pg_is_running() { # <datadir>
	[[ -f $1/postmaster.pid ]] && pg_cmd "$PG_BIN/pg_ctl" status -D "$1" >/dev/null 2>&1
}

pg_ready() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$1" -U postgres -d postgres -t 2; }

pg_running_port() { sed -n 4p "$1/postmaster.pid" 2>/dev/null || true; }

pg_runtime_conf() { # <datadir> <port> [primary port]
	local f=$1/osc_runtime.conf
	{
		echo "# written by scripts/services.sh on every start"
		echo "port = $2"
		echo "unix_socket_directories = '$PG_SOCK_DIR'"
		# Statement statistics: the contract safety proof looks for queries that still use what
		# contract is about to drop (pg_stat_statements, when the extension is created).
		echo "shared_preload_libraries = 'pg_stat_statements'"
		echo "pg_stat_statements.track = all"
		if [[ -n ${3:-} ]]; then
			echo "primary_conninfo = 'host=127.0.0.1 port=$3 user=postgres application_name=$PG_SLOT'"
			echo "primary_slot_name = '$PG_SLOT'"
		fi
	} >"$f"
	chown postgres:postgres "$f"
	chmod 0600 "$f"
}

pg_init_primary() {
	local d=$PG_DIR/primary
	[[ -f $d/PG_VERSION ]] && return 0
	rm -rf "$d"
	log "pg-primary: initdb $d"
	local ilog
	ilog=$(pg_logfile pg-initdb.log)
	pg_cmd "$PG_BIN/initdb" -D "$d" -U postgres --auth=trust -E UTF8 --no-locale -N >"$ilog" 2>&1 ||
		die "pg-primary: initdb failed" "$ilog"
	cat >>"$d/postgresql.conf" <<EOF

# ---- scripts/services.sh ----
listen_addresses = '127.0.0.1'
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
hot_standby = on
hot_standby_feedback = on
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
include_if_exists = 'osc_runtime.conf'
EOF
	grep -Eq '^host[[:space:]]+replication[[:space:]]+all[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust' "$d/pg_hba.conf" ||
		echo 'host replication all 127.0.0.1/32 trust' >>"$d/pg_hba.conf"
}

pg_init_replica() {
	local d=$PG_DIR/replica
	[[ -f $d/PG_VERSION && -f $d/standby.signal ]] && return 0
	rm -rf "$d"
	log "pg-replica: pg_basebackup from 127.0.0.1:$PG_PRIMARY_PORT into $d"
	# A slot left over from an earlier replica would make `pg_basebackup -C` fail.
	pg_psql "$PG_PRIMARY_PORT" "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
		WHERE slot_name = '$PG_SLOT' AND NOT active" >/dev/null
	local blog
	blog=$(pg_logfile pg-basebackup.log)
	pg_cmd "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$PG_PRIMARY_PORT" -U postgres -D "$d" \
		-R -X stream -c fast -C -S "$PG_SLOT" -N >"$blog" 2>&1 ||
		die "pg-replica: pg_basebackup failed" "$blog"
	# primary_conninfo/primary_slot_name come from osc_runtime.conf (rewritten on each start, so a
	# changed PG_PRIMARY_PORT is picked up); postgresql.auto.conf would override them.
	sed -i -e '/^primary_conninfo/d' -e '/^primary_slot_name/d' "$d/postgresql.auto.conf"
}

pg_start() { # <name> <datadir> <port> [primary port]
	local name=$1 d=$2 port=$3 primary_port=${4:-}
	local logfile
	logfile=$(pg_logfile "$name.log")
	if pg_is_running "$d"; then
		local running_port
		running_port=$(pg_running_port "$d")
		[[ $running_port == "$port" ]] ||
			die "$name: already running on port $running_port, not $port (run '$0 stop' first)"
		wait_until "$name" "$logfile" pg_ready "$port"
		log "$name: already running on 127.0.0.1:$port (reused)"
		return 0
	fi
	port_open "$port" && die "$name: port $port is already in use by another process"
	pg_runtime_conf "$d" "$port" "$primary_port"
	# 9>&-: the server must not inherit the lock file descriptor.
	local out
	if ! out=$(pg_cmd "$PG_BIN/pg_ctl" start -D "$d" -l "$logfile" -w -t "$TIMEOUT" -s 2>&1 9>&-); then
		printf '%s\n' "$out" >&2
		die "$name: pg_ctl start failed" "$logfile"
	fi
	wait_until "$name" "$logfile" pg_ready "$port"
	log "$name: started on 127.0.0.1:$port"
}

pg_stop() { # <name> <datadir>
	local name=$1 d=$2
	if pg_is_running "$d"; then
		pg_cmd "$PG_BIN/pg_ctl" stop -D "$d" -m fast -w -t "$TIMEOUT" -s ||
			die "$name: pg_ctl stop failed" "$LOG_DIR/$name.log"
		log "$name: stopped"
	else
		log "$name: not running"
	fi
}

start_pg() {
	pg_init_primary
	pg_start pg-primary "$PG_DIR/primary" "$PG_PRIMARY_PORT"
	[[ $(pg_psql "$PG_PRIMARY_PORT" "SELECT count(*) FROM pg_database WHERE datname = 'osc'") == 1 ]] ||
		pg_psql "$PG_PRIMARY_PORT" "CREATE DATABASE osc" >/dev/null
	pg_init_replica
	pg_start pg-replica "$PG_DIR/replica" "$PG_REPLICA_PORT" "$PG_PRIMARY_PORT"
	[[ $(pg_psql "$PG_REPLICA_PORT" "SELECT pg_is_in_recovery()") == t ]] ||
		die "pg-replica: 127.0.0.1:$PG_REPLICA_PORT is not in recovery (not a replica)" "$LOG_DIR/pg-replica.log"
}

# ---------------------------------------------------------------------------------------------------
# MariaDB

my_cnf() { printf '%s' "$MY_DIR/$1.cnf"; }
my_sock() { printf '%s' "$MY_SOCK_DIR/$1.sock"; }
my_pidfile() { printf '%s' "$MY_DIR/$1.pid"; }
my_errlog() { printf '%s' "$LOG_DIR/mariadb-$1.err"; }

# Admin connection as root@localhost over the server's own socket (no password; socket dir is 0700).
my_sql() { # <name> <sql>
	"$MARIADB" --no-defaults --protocol=socket -S "$(my_sock "$1")" -uroot -N -B -e "$2"
}

my_ping() { "$MARIADB_ADMIN" --no-defaults --protocol=socket -S "$(my_sock "$1")" -uroot --connect-timeout=2 ping >/dev/null 2>&1; }

# PID of the mariadbd started with our defaults file, or nothing.
my_pid() {
	local pidfile pid cmd
	pidfile=$(my_pidfile "$1")
	[[ -s $pidfile ]] || return 0
	pid=$(<"$pidfile")
	[[ $pid =~ ^[0-9]+$ ]] || return 0
	cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 0
	[[ $cmd == *"--defaults-file=$(my_cnf "$1")"* ]] && printf '%s' "$pid"
	return 0
}

my_write_cnf() { # <name> <port> <server_id> [extra lines]
	local name=$1 port=$2 server_id=$3 extra=${4:-}
	mkdir -p "$MY_DIR/tmp-$name"
	cat >"$(my_cnf "$name")" <<EOF
# written by scripts/services.sh on every start
[mysqld]
user                           = root
datadir                        = $MY_DIR/$name
tmpdir                         = $MY_DIR/tmp-$name
socket                         = $(my_sock "$name")
pid-file                       = $(my_pidfile "$name")
log-error                      = $(my_errlog "$name")
port                           = $port
bind-address                   = 127.0.0.1
skip-name-resolve
server_id                      = $server_id
log_bin                        = mariadb-bin
relay_log                      = relay-bin
binlog_format                  = ROW
binlog_row_image               = FULL
log_slave_updates              = ON
gtid_strict_mode               = ON
event_scheduler                = ON
report_host                    = 127.0.0.1
report_port                    = $port
character_set_server           = utf8mb4
collation_server               = utf8mb4_general_ci
max_connections                = 200
innodb_flush_log_at_trx_commit = 2
# Statement digests and index usage for the contract safety proof (off by default on MariaDB).
performance_schema             = ON
$extra
EOF
	chmod 0600 "$(my_cnf "$name")"
}

# Client option file for TCP as root@127.0.0.1 (for pt-online-schema-change F=..., gh-ost --conf=...).
my_write_client_cnf() { # <name> <port> <password>
	local f=$MY_DIR/$1-client.cnf
	(
		umask 077
		printf '[client]\nuser=root\npassword=%s\nhost=127.0.0.1\nport=%s\n' "$3" "$2" >"$f.tmp"
		mv -f "$f.tmp" "$f"
	)
}

my_init() { # <name>
	local name=$1 d=$MY_DIR/$1
	[[ -d $d/mysql ]] && return 0
	rm -rf "$d"
	log "mariadb-$name: mariadb-install-db $d"
	local ilog=$LOG_DIR/mariadb-$name-install.log
	# A private tmpdir: the two bootstraps run in parallel and their temporary tables collide in /tmp.
	mkdir -p "$MY_DIR/tmp-$name"
	"$MARIADB_INSTALL_DB" --no-defaults --datadir="$d" --user=root --tmpdir="$MY_DIR/tmp-$name" \
		--auth-root-authentication-method=normal --skip-test-db >"$ilog" 2>&1 ||
		die "mariadb-$name: mariadb-install-db failed" "$ilog"
}

my_start() { # <name> <port>
	local name=$1 port=$2 pid errlog
	errlog=$(my_errlog "$name")
	pid=$(my_pid "$name")
	if [[ -n $pid ]]; then
		wait_until "mariadb-$name" "$errlog" my_ping "$name"
		local running_port
		running_port=$(my_sql "$name" "SELECT @@port")
		[[ $running_port == "$port" ]] ||
			die "mariadb-$name: already running on port $running_port, not $port (run '$0 stop' first)"
		log "mariadb-$name: already running on 127.0.0.1:$port (reused)"
		return 0
	fi
	rm -f "$(my_pidfile "$name")"
	port_open "$port" && die "mariadb-$name: port $port is already in use by another process"
	# setsid: own session, survives this script; 9>&-: must not inherit the lock file descriptor.
	setsid "$MARIADBD" --defaults-file="$(my_cnf "$name")" </dev/null >>"$LOG_DIR/mariadb-$name.out" 2>&1 9>&- &
	local launched=$!
	local deadline=$((SECONDS + TIMEOUT))
	until my_ping "$name"; do
		kill -0 "$launched" 2>/dev/null || die "mariadb-$name: mariadbd exited during start-up" "$errlog" "$LOG_DIR/mariadb-$name.out"
		((SECONDS < deadline)) || die "mariadb-$name: not ready after ${TIMEOUT}s" "$errlog"
		sleep 0.1
	done
	log "mariadb-$name: started on 127.0.0.1:$port"
}

my_stop() { # <name>
	local name=$1 pid
	pid=$(my_pid "$name")
	if [[ -z $pid ]]; then
		rm -f "$(my_pidfile "$name")"
		log "mariadb-$name: not running"
		return 0
	fi
	kill -TERM "$pid"
	local deadline=$((SECONDS + TIMEOUT))
	while kill -0 "$pid" 2>/dev/null; do
		((SECONDS < deadline)) || die "mariadb-$name: pid $pid still running ${TIMEOUT}s after SIGTERM" "$(my_errlog "$name")"
		sleep 0.1
	done
	log "mariadb-$name: stopped"
}

# Users: idempotent, not binlogged (each server gets its own, so nothing conflicts in replication).
my_setup_users() { # <name> <root password> <repl password>
	my_sql "$1" "
		SET SESSION sql_log_bin = 0;
		CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '$2';
		ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY '$2';
		GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
		CREATE USER IF NOT EXISTS '$MYSQL_REPL_USER'@'127.0.0.1' IDENTIFIED BY '$3';
		ALTER USER '$MYSQL_REPL_USER'@'127.0.0.1' IDENTIFIED BY '$3';
		GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '$MYSQL_REPL_USER'@'127.0.0.1';"
	if [[ $1 == replica ]]; then
		# ALL PRIVILEGES includes READ_ONLY ADMIN, which lets a client write despite read_only=ON; a
		# stray write on the replica is an errant GTID that stops replication (gtid_strict_mode).
		my_sql "$1" "SET SESSION sql_log_bin = 0; REVOKE READ_ONLY ADMIN ON *.* FROM 'root'@'127.0.0.1'"
	fi
	# mariadb-install-db also creates password-less root@<hostname> and root@::1: drop them.
	local host
	for host in $(my_sql "$1" "SELECT host FROM mysql.user WHERE user = 'root' AND host NOT IN ('localhost', '127.0.0.1')"); do
		my_sql "$1" "SET SESSION sql_log_bin = 0; DROP USER 'root'@'$host'"
	done
}

my_slave_status() {
	"$MARIADB" --no-defaults --protocol=socket -S "$(my_sock replica)" -uroot -B -e "SHOW SLAVE STATUS\G"
}

my_io_running() { [[ $(my_slave_field Slave_IO_Running "$(my_slave_status)") == Yes ]]; }

my_slave_field() { # <field> <SHOW SLAVE STATUS\G output>
	sed -n "s/^ *$1: //p" <<<"$2" | head -n 1
}

my_setup_replication() { # <repl password>
	local status configured_port wait_for_catch_up=${MY_REPLICA_STARTED:-0}
	status=$(my_slave_status)
	configured_port=$(my_slave_field Master_Port "$status")
	if [[ $configured_port != "$MYSQL_PRIMARY_PORT" || $(my_slave_field Master_Host "$status") != 127.0.0.1 ]]; then
		log "mariadb-replica: CHANGE MASTER TO 127.0.0.1:$MYSQL_PRIMARY_PORT (GTID slave_pos)"
		[[ -z $status ]] || my_sql replica "STOP SLAVE"
		my_sql replica "
			CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = $MYSQL_PRIMARY_PORT,
				MASTER_USER = '$MYSQL_REPL_USER', MASTER_PASSWORD = '$1',
				MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1;
			START SLAVE;"
		wait_for_catch_up=1
	fi
	[[ $(my_sql replica "SELECT @@read_only") == 1 ]] || my_sql replica "SET GLOBAL read_only = ON"
	if ((wait_for_catch_up)); then
		local pos result
		pos=$(my_sql primary "SELECT @@gtid_binlog_pos")
		result=$(my_sql replica "SELECT MASTER_GTID_WAIT('$pos', $TIMEOUT)")
		[[ $result == 0 ]] || {
			my_slave_status >"$LOG_DIR/mariadb-replica-slave-status.txt" 2>&1 || true
			die "mariadb-replica: did not reach primary GTID position '$pos' within ${TIMEOUT}s" \
				"$LOG_DIR/mariadb-replica-slave-status.txt" "$(my_errlog replica)"
		}
		# After a restart the IO thread may still be in its 1 s connect-retry: wait until it is connected.
		wait_until "mariadb-replica: replication IO thread" "$(my_errlog replica)" my_io_running
		log "mariadb-replica: replicating, caught up with primary at GTID '$pos'"
	else
		status=$(my_slave_status)
		if [[ $(my_slave_field Slave_IO_Running "$status") != Yes || $(my_slave_field Slave_SQL_Running "$status") != Yes ]]; then
			warn "mariadb-replica: replication threads are not both running (IO=$(my_slave_field Slave_IO_Running "$status"), SQL=$(my_slave_field Slave_SQL_Running "$status")); left as is"
		fi
	fi
}

start_mariadb() {
	local root_pw repl_pw
	root_pw=$(secret "$MYSQL_ROOT_PASSWORD_FILE")
	repl_pw=$(secret "$MYSQL_REPL_PASSWORD_FILE")
	my_write_cnf primary "$MYSQL_PRIMARY_PORT" 1
	my_write_cnf replica "$MYSQL_REPLICA_PORT" 2 "read_only                      = ON"
	my_write_client_cnf primary "$MYSQL_PRIMARY_PORT" "$root_pw"
	my_write_client_cnf replica "$MYSQL_REPLICA_PORT" "$root_pw"

	local replica_was_running=0
	[[ -z $(my_pid replica) ]] || replica_was_running=1
	# The two servers are independent until CHANGE MASTER: initialise and start them in parallel.
	local p1 p2
	(
		my_init primary
		my_start primary "$MYSQL_PRIMARY_PORT"
	) &
	p1=$!
	(
		my_init replica
		my_start replica "$MYSQL_REPLICA_PORT"
	) &
	p2=$!
	wait "$p1" || die "mariadb-primary: start failed"
	wait "$p2" || die "mariadb-replica: start failed"

	my_setup_users primary "$root_pw" "$repl_pw"
	my_setup_users replica "$root_pw" "$repl_pw"
	[[ $(my_sql primary "SELECT count(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'osc'") == 1 ]] ||
		my_sql primary "CREATE DATABASE osc"
	MY_REPLICA_STARTED=$((1 - replica_was_running)) my_setup_replication "$repl_pw"

	# Prove that the DSN credentials work over TCP.
	local name port
	for name in primary replica; do
		[[ $name == primary ]] && port=$MYSQL_PRIMARY_PORT || port=$MYSQL_REPLICA_PORT
		"$MARIADB" --defaults-file="$MY_DIR/$name-client.cnf" -N -B -e "SELECT 1" osc >/dev/null ||
			die "mariadb-$name: cannot log in as root@127.0.0.1:$port to database osc"
	done
}

# ---------------------------------------------------------------------------------------------------
# commands

write_env() {
	local root_pw tmp=$ENV_FILE.tmp.$$
	root_pw=$(<"$MYSQL_ROOT_PASSWORD_FILE")
	(
		umask 077
		{
			printf 'export PG_PRIMARY_DSN=%q\n' "postgresql://postgres@127.0.0.1:$PG_PRIMARY_PORT/postgres"
			printf 'export PG_REPLICA_DSN=%q\n' "postgresql://postgres@127.0.0.1:$PG_REPLICA_PORT/postgres"
			printf 'export MYSQL_PRIMARY_DSN=%q\n' "mysql://root:$root_pw@127.0.0.1:$MYSQL_PRIMARY_PORT/osc"
			printf 'export MYSQL_REPLICA_DSN=%q\n' "mysql://root:$root_pw@127.0.0.1:$MYSQL_REPLICA_PORT/osc"
			printf 'export OSC_SERVICES_DIR=%q\n' "$STATE"
		} >"$tmp"
	)
	chmod 0600 "$tmp"
	mv -f "$tmp" "$ENV_FILE"
}

lock_state() {
	exec 9>"$STATE/.lock"
	flock -w 600 9 || die "another '$0' run holds $STATE/.lock"
}

cmd_start() {
	require_root
	validate_ports
	local t0=$SECONDS
	ensure_packages
	find_tools
	prepare_dirs
	lock_state
	# PostgreSQL and MariaDB are independent: bring both pairs up at the same time.
	local pg mdb rc=0
	start_pg &
	pg=$!
	start_mariadb &
	mdb=$!
	wait "$pg" || rc=1
	wait "$mdb" || rc=1
	((rc == 0)) || die "start failed (logs in $LOG_DIR)"
	write_env
	log "all servers up in $((SECONDS - t0))s; environment: $ENV_FILE"
}

cmd_stop() {
	require_root
	[[ -d $STATE ]] || {
		log "nothing to stop ($STATE does not exist)"
		return 0
	}
	find_tools
	lock_state
	local pids=() rc=0 p
	pg_stop pg-replica "$PG_DIR/replica" &
	pids+=($!)
	pg_stop pg-primary "$PG_DIR/primary" &
	pids+=($!)
	my_stop replica &
	pids+=($!)
	my_stop primary &
	pids+=($!)
	for p in "${pids[@]}"; do
		wait "$p" || rc=1
	done
	((rc == 0)) || die "stop failed"
}

cmd_status() {
	require_root
	local all_up=1 detail
	find_tools
	if pg_is_running "$PG_DIR/primary" && pg_ready "$PG_PRIMARY_PORT"; then
		log "pg-primary       up    127.0.0.1:$PG_PRIMARY_PORT"
	else
		log "pg-primary       down"
		all_up=0
	fi
	if pg_is_running "$PG_DIR/replica" && pg_ready "$PG_REPLICA_PORT"; then
		detail=$(pg_psql "$PG_REPLICA_PORT" "SELECT CASE WHEN pg_is_in_recovery() THEN 'in recovery, wal receiver: '
			|| coalesce((SELECT status FROM pg_stat_wal_receiver), 'none') ELSE 'NOT in recovery' END" 2>&1 || true)
		log "pg-replica       up    127.0.0.1:$PG_REPLICA_PORT ($detail)"
	else
		log "pg-replica       down"
		all_up=0
	fi
	local name port status
	for name in primary replica; do
		[[ $name == primary ]] && port=$MYSQL_PRIMARY_PORT || port=$MYSQL_REPLICA_PORT
		if [[ -n $(my_pid "$name") ]] && my_ping "$name"; then
			detail=""
			if [[ $name == replica ]]; then
				status=$(my_slave_status 2>&1 || true)
				detail=" (IO=$(my_slave_field Slave_IO_Running "$status"), SQL=$(my_slave_field Slave_SQL_Running "$status"), read_only=$(my_sql replica 'SELECT @@read_only' 2>&1 || true))"
			fi
			log "mariadb-$name  up    127.0.0.1:$port$detail"
		else
			log "mariadb-$name  down"
			all_up=0
		fi
	done
	((all_up)) || return 3
}

cmd_env() {
	[[ -f $ENV_FILE ]] || die "$ENV_FILE does not exist: run '$0 start' first"
	cat "$ENV_FILE"
}

case ${1:-} in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
env) cmd_env ;;
*)
	echo "usage: $0 start|stop|status|env" >&2
	exit 2
	;;
esac
