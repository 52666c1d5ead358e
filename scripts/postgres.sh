#!/usr/bin/env bash
# Throwaway PostgreSQL 15 for tests and local development.
#
#   scripts/postgres.sh start DIR   # prints the DSN as the last line of stdout
#   scripts/postgres.sh stop DIR
#
# start installs postgresql-15 with apt-get when it is missing (needs root),
# creates a cluster in DIR/data (once), starts it listening on 127.0.0.1 only,
# on a free port, with its unix socket inside DIR (so it never collides with a
# system cluster), creates the croupier_test database and prints
#   postgres://postgres@127.0.0.1:PORT/croupier_test?sslmode=disable
# Authentication is "trust": the server is reachable from this machine only
# and holds test data only. Both commands are idempotent; running start on a
# running cluster just prints its DSN again. Logs go to DIR/*.log.
set -euo pipefail

PG_MAJOR=15
PG_BIN="/usr/lib/postgresql/${PG_MAJOR}/bin"
DB_NAME=croupier_test

die() {
	echo "postgres.sh: $*" >&2
	exit 1
}

usage() {
	echo "usage: $0 start|stop DIR" >&2
	exit 2
}

# as_pg runs a command as the cluster owner: PostgreSQL refuses to run as
# root, so root delegates to the postgres OS user; anyone else runs it as
# themselves.
as_pg() {
	if [[ $EUID -eq 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

install_postgres() {
	[[ -x "${PG_BIN}/postgres" ]] && return 0
	[[ $EUID -eq 0 ]] || die "${PG_BIN}/postgres is missing; install postgresql-${PG_MAJOR} (apt-get install postgresql-${PG_MAJOR}) or run as root"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq --no-install-recommends "postgresql-${PG_MAJOR}" >/dev/null
	[[ -x "${PG_BIN}/postgres" ]] || die "apt-get installed postgresql-${PG_MAJOR} but ${PG_BIN}/postgres is still missing"
}

ensure_owner() {
	if [[ $EUID -eq 0 ]]; then
		id postgres >/dev/null 2>&1 || die "OS user postgres does not exist (the postgresql-${PG_MAJOR} package creates it)"
		chown postgres: "$DIR" "$DIR/data" "$DIR/sock"
		as_pg test -x "$DIR" -a -w "$DIR" ||
			die "user postgres cannot reach $DIR; use a directory whose parents are world-searchable (e.g. under /tmp)"
	fi
	chmod 0700 "$DIR/data"
}

# free_port asks the kernel for an unused loopback port; without python3 it
# guesses one at random and start_server retries on a collision.
free_port() {
	if command -v python3 >/dev/null 2>&1; then
		python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()' 2>/dev/null && return 0
	fi
	echo $((20000 + RANDOM % 40000))
}

is_running() {
	as_pg "${PG_BIN}/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1
}

start_server() {
	local port attempt sockdir="$DIR/sock"
	# A unix socket path longer than 107 bytes cannot be bound; clients use
	# TCP anyway, so a deep DIR just goes without a socket.
	if ((${#sockdir} + 18 > 107)); then
		sockdir=""
	fi
	for attempt in 1 2 3 4 5 6 7 8; do
		port=$(free_port)
		if as_pg "${PG_BIN}/pg_ctl" -D "$DIR/data" -l "$DIR/postgres.log" -w -t 60 \
			-o "-c listen_addresses=127.0.0.1 -p ${port} -c unix_socket_directories='${sockdir}'" \
			start >/dev/null 2>&1; then
			return 0
		fi
		# A port taken between picking and binding fails the start; anything
		# else (bad data dir, permissions) fails every attempt the same way.
		if is_running; then
			as_pg "${PG_BIN}/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true
		fi
	done
	die "PostgreSQL did not start after ${attempt} attempts; see $DIR/postgres.log"
}

wait_ready() {
	local port=$1 i
	for ((i = 0; i < 120; i++)); do
		"${PG_BIN}/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres && return 0
		sleep 0.5
	done
	die "PostgreSQL on 127.0.0.1:${port} is not ready after 60s; see $DIR/postgres.log"
}

ensure_database() {
	local port=$1
	local psql=("${PG_BIN}/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -tA)
	if [[ -z "$("${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = '${DB_NAME}'")" ]]; then
		"${psql[@]}" -c "CREATE DATABASE ${DB_NAME}" >/dev/null
	fi
}

cmd_start() {
	install_postgres
	mkdir -p "$DIR/data" "$DIR/sock"
	ensure_owner
	if [[ -f "$DIR/data/PG_VERSION" && "$(<"$DIR/data/PG_VERSION")" != "$PG_MAJOR" ]]; then
		die "$DIR/data holds a PostgreSQL $(<"$DIR/data/PG_VERSION") cluster, not ${PG_MAJOR}; stop it and use another DIR"
	fi
	if [[ ! -f "$DIR/data/PG_VERSION" ]]; then
		as_pg "${PG_BIN}/initdb" -D "$DIR/data" -U postgres -A trust -E UTF8 --locale=C --no-sync \
			>"$DIR/initdb.log" 2>&1 || die "initdb failed; see $DIR/initdb.log"
	fi
	is_running || start_server
	# Line 4 of postmaster.pid is the port the running server listens on.
	local port
	port=$(sed -n 4p "$DIR/data/postmaster.pid")
	[[ $port =~ ^[0-9]+$ ]] || die "cannot read the port from $DIR/data/postmaster.pid"
	wait_ready "$port"
	ensure_database "$port"
	echo "postgres://postgres@127.0.0.1:${port}/${DB_NAME}?sslmode=disable"
}

cmd_stop() {
	[[ -d "$DIR/data" ]] || return 0
	if is_running; then
		as_pg "${PG_BIN}/pg_ctl" -D "$DIR/data" -m fast -w -t 60 stop >/dev/null
	fi
}

[[ $# -eq 2 ]] || usage
DIR=$(realpath -m -- "$2")
case "$1" in
start) cmd_start ;;
stop) cmd_stop ;;
*) usage ;;
esac
