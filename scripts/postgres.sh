#!/usr/bin/env bash
# A throwaway PostgreSQL server for the store's tests (PostgreSQL's own binaries, nothing
# installed): 'start' creates a cluster in a new folder owned by the server's user, listening on a
# free port of 127.0.0.1 only, with password authentication (so that a wrong password is
# refused, as on a real server), and prints 'DIR URL'; 'stop DIR' stops it and removes DIR;
# 'crash DIR' stops it at once, as a server that goes away does (committed data stays),
# and 'restart DIR' starts it again on the same port.
# The server refuses to run as root: as root it runs as the 'postgres' user, in a folder of
# /tmp (a folder under root's mktemp -d is closed to that user).
#   read -r dir url < <(bash scripts/postgres.sh start) ... bash scripts/postgres.sh stop "$dir"
set -euo pipefail
action=${1:?usage: postgres.sh start | stop DIR | crash DIR | restart DIR}
bin=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
if [ -z "$bin" ] || [ ! -x "$bin/pg_ctl" ]; then
    echo "postgres.sh: no PostgreSQL binaries (set PG_BIN to the folder holding pg_ctl)" >&2
    exit 1
fi
as_server() {
    # from /, which that user may enter, unlike the caller's checkout in a root-only folder
    if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}
serve() {  # start the server of folder $1 on the port it was created with
    as_server "$bin/pg_ctl" -D "$1/data" -l "$1/server.log" -w -t 30 \
        -o "-h 127.0.0.1 -p $(cat "$1/port") -k $1 -c max_connections=100 -c fsync=off" \
        start >/dev/null
}
server_dir() {
    case "$1" in
    /tmp/dynbench-pg.*) echo "$1" ;;
    *) echo "postgres.sh: '$1' is not a server folder of this script" >&2; exit 2 ;;
    esac
}
case "$action" in
start)
    dir=$(mktemp -d /tmp/dynbench-pg.XXXXXX)
    chmod 755 "$dir"
    password=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    printf '%s\n' "$password" > "$dir/pwfile"
    [ "$(id -u)" = 0 ] && chown -R postgres "$dir"
    as_server "$bin/initdb" -D "$dir/data" -U dynbench --pwfile="$dir/pwfile" \
        --auth=scram-sha-256 -E UTF8 >"$dir/initdb.log" 2>&1
    printf '%s\n' "$port" > "$dir/port"
    serve "$dir"
    echo "$dir postgresql+psycopg://dynbench:$password@127.0.0.1:$port/postgres"
    ;;
crash)
    dir=$(server_dir "${2:-}")
    as_server "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null
    ;;
restart)
    serve "$(server_dir "${2:-}")"
    ;;
stop)
    dir=$(server_dir "${2:-}")
    if [ -d "$dir/data" ]; then
        as_server "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
    fi
    rm -rf "$dir"
    ;;
*)
    echo "usage: postgres.sh start | stop DIR | crash DIR | restart DIR" >&2
    exit 2
    ;;
esac
