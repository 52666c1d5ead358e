#!/usr/bin/env bash
# Three `croupier server` nodes on this machine, one binary, no compose:
# their embedded NATS servers routed into one cluster, one PostgreSQL
# database (docs/cluster.md, "Running three nodes").
#
#   scripts/cluster.sh start DIR DSN   # prints each node's gRPC address, then an agent command
#   scripts/cluster.sh stop DIR
#
# DSN is a PostgreSQL database the nodes share (scripts/postgres.sh start
# prints one). DIR holds the certificates (made once), each node's data
# directory and log (DIR/nodeN.log), their pids and the administrator's
# password (DIR/admin-password, mode 0600). Environment:
#   CROUPIER     the binary (default: croupier on PATH, else bin/croupier)
#   NODES        how many nodes (default 3)
#   GRPC_PORTS   one per node (default "8443 8444 8445"; 0 = any free port)
#   HTTP_PORTS   one per node (default "8080 8081 8082"; 0 = any free port)
#   ROUTE_PORTS  NATS route ports, one per node (default "6222 6223 6224")
#   HOST         the address every port binds (default 127.0.0.1)
# On separate hosts run the same `croupier server` line on each, with that
# host's address for --nats-cluster-listen and every host in --nats-routes.
set -euo pipefail

die() {
	echo "cluster.sh: $*" >&2
	exit 1
}

usage() {
	echo "usage: $0 start DIR DSN | stop DIR" >&2
	exit 2
}

bin() {
	if [[ -n "${CROUPIER:-}" ]]; then
		echo "$CROUPIER"
	elif command -v croupier >/dev/null 2>&1; then
		command -v croupier
	elif [[ -x bin/croupier ]]; then
		echo "$PWD/bin/croupier"
	else
		die "no croupier binary: set CROUPIER, put croupier on PATH or run make build"
	fi
}

# port LIST I prints the I-th (0-based) word of LIST.
port() {
	local -a ps
	read -r -a ps <<<"$1"
	[[ -n "${ps[$2]:-}" ]] || die "not enough ports in \"$1\" for node $(($2 + 1))"
	echo "${ps[$2]}"
}

cmd_start() {
	local dsn=$1 croupier n host routes="" i
	croupier=$(bin)
	n=${NODES:-3}
	host=${HOST:-127.0.0.1}
	[[ $n =~ ^[1-9]$ ]] || die "NODES must be 1 to 9, got \"$n\""
	local grpc_ports=${GRPC_PORTS:-8443 8444 8445} http_ports=${HTTP_PORTS:-8080 8081 8082} route_ports=${ROUTE_PORTS:-6222 6223 6224}
	for ((i = 0; i < n; i++)); do
		routes+="${routes:+,}nats://${host}:$(port "$route_ports" "$i")"
	done
	mkdir -p "$DIR"
	[[ -f "$DIR/certs/ca.crt" ]] || "$croupier" certs init --dir "$DIR/certs" >/dev/null
	# One bus token for every node: routes authenticate with it (0600).
	if [[ ! -s "$DIR/nats.token" ]]; then
		(umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DIR/nats.token")
	fi
	if [[ ! -s "$DIR/admin-password" ]]; then
		(umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$DIR/admin-password")
	fi
	"$croupier" migrate --store-driver postgres --store-dsn "$dsn" >"$DIR/migrate.log" 2>&1 ||
		die "migrate failed; see $DIR/migrate.log"
	for ((i = 1; i <= n; i++)); do
		[[ -f "$DIR/node$i.pid" ]] && kill -0 "$(<"$DIR/node$i.pid")" 2>/dev/null && die "node$i already runs (pid $(<"$DIR/node$i.pid")); stop it first"
		# The first node creates the administrator; the others share the database.
		local admin=()
		((i == 1)) && admin=(CROUPIER_ADMIN_USER=operator CROUPIER_ADMIN_PASSWORD="$(<"$DIR/admin-password")")
		env "${admin[@]}" nohup "$croupier" server --log-format json --node-id "node$i" \
			--grpc-addr "${host}:$(port "$grpc_ports" $((i - 1)))" --http-addr "${host}:$(port "$http_ports" $((i - 1)))" \
			--tunnel-http-addr "" --data-dir "$DIR/node$i" \
			--tls-ca "$DIR/certs/ca.crt" --tls-cert "$DIR/certs/server.crt" --tls-key "$DIR/certs/server.key" \
			--store-driver postgres --store-dsn "$dsn" \
			--nats-cluster-name croupier --nats-cluster-listen "${host}:$(port "$route_ports" $((i - 1)))" \
			--nats-routes "$routes" --nats-token-file "$DIR/nats.token" >"$DIR/node$i.log" 2>&1 </dev/null &
		echo $! >"$DIR/node$i.pid"
	done
	# JetStream needs a quorum before the nodes report started: wait for all.
	local addrs="" addr t
	for ((i = 1; i <= n; i++)); do
		addr=""
		for ((t = 0; t < 240; t++)); do
			addr=$(grep -m1 '"msg":"croupier server started"' "$DIR/node$i.log" 2>/dev/null | sed -n 's/.*"grpc":"\([^"]*\)".*/\1/p' || true)
			[[ -n $addr ]] && break
			kill -0 "$(<"$DIR/node$i.pid")" 2>/dev/null || die "node$i exited; see $DIR/node$i.log"
			sleep 0.5
		done
		[[ -n $addr ]] || die "node$i did not start within 120s; see $DIR/node$i.log"
		echo "node$i $addr"
		addrs+="${addrs:+,}$addr"
	done
	echo "agent: $croupier agent --server $addrs --tls-ca $DIR/certs/ca.crt --tls-cert AGENT.crt --tls-key AGENT.key ..."
}

cmd_stop() {
	local f pid t
	for f in "$DIR"/node*.pid; do
		[[ -f $f ]] || continue
		pid=$(<"$f")
		if kill -0 "$pid" 2>/dev/null; then
			kill -TERM "$pid"
			for ((t = 0; t < 60; t++)); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.5
			done
			kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
		fi
		rm -f "$f"
	done
}

[[ $# -ge 2 ]] || usage
DIR=$2
case $1 in
start)
	[[ $# -eq 3 ]] || usage
	cmd_start "$3"
	;;
stop) cmd_stop ;;
*) usage ;;
esac
