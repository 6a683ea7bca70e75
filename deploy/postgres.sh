#!/usr/bin/env bash
# A real, THROW-AWAY PostgreSQL cluster for tests and development, from the system packages
# (no Docker needed). Durability is switched off (fsync, synchronous_commit,
# full_page_writes): never use these settings for data you want to keep.
#
#   deploy/postgres.sh start STATE_DIR   initdb + start (or reuse a healthy) cluster on a free
#                                        port; creates database "dealreg"; writes
#                                        STATE_DIR/postgres.env
#   deploy/postgres.sh stop STATE_DIR    pg_ctl -m fast stop (idempotent)
#   deploy/postgres.sh status STATE_DIR  exit 0 when it runs and accepts connections
#
# PostgreSQL refuses to run as root: as root, initdb/pg_ctl run as the "postgres" system user
# (runuser) in STATE_DIR/pg, which is chowned to that user.
#
# Environment: PG_BINDIR overrides where initdb/pg_ctl/pg_isready/psql are looked up.
# Files in STATE_DIR/pg: data/, sock/ (unix socket), postgres.log.
set -euo pipefail

PYTHON="${PYTHON:-python3}"
PG_USER_SYSTEM=postgres   # system account used when running as root
RUNUSER="$(command -v runuser || ls /usr/sbin/runuser /sbin/runuser 2>/dev/null | head -n 1 || true)"

log() { echo "postgres.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() {
    echo "usage: $0 start STATE_DIR | stop STATE_DIR | status STATE_DIR" >&2
    exit 2
}

# Sets BINDIR to a directory holding initdb and pg_ctl.
find_bindir() {
    local candidates=() d
    [[ -n "${PG_BINDIR:-}" ]] && candidates+=("$PG_BINDIR")
    if command -v pg_config >/dev/null; then
        d="$(pg_config --bindir 2>/dev/null || true)"
        [[ -n "$d" ]] && candidates+=("$d")
    fi
    if command -v initdb >/dev/null; then
        candidates+=("$(dirname "$(command -v initdb)")")
    fi
    # Debian/Ubuntu packages, newest first.
    while IFS= read -r d; do candidates+=("$d"); done \
        < <(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5,5 -rn)
    for d in "${candidates[@]}"; do
        if [[ -x "$d/initdb" && -x "$d/pg_ctl" ]]; then
            BINDIR="$d"
            return 0
        fi
    done
    die "PostgreSQL server binaries (initdb, pg_ctl) not found. Install them with:
    apt-get update && apt-get install -y postgresql
(or set PG_BINDIR to the directory holding initdb and pg_ctl)"
}

# A client tool: next to the server binaries, else on PATH.
tool() {
    if [[ -x "$BINDIR/$1" ]]; then
        echo "$BINDIR/$1"
    elif command -v "$1" >/dev/null; then
        command -v "$1"
    else
        die "$1 not found (apt-get install -y postgresql-client)"
    fi
}

# Runs a command as the cluster's owner (the postgres system user when we are root), from
# inside STATE_DIR/pg so that user can read its working directory.
as_owner() {
    if [[ $EUID -eq 0 ]]; then
        (cd "$PGROOT" && "$RUNUSER" -u "$PG_USER_SYSTEM" -- "$@")
    else
        (cd "$PGROOT" && "$@")
    fi
}

free_port() {
    "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

port_of() {
    sed -n 's/^port = \([0-9]*\).*/\1/p' "$PGROOT/data/postgresql.conf" 2>/dev/null | tail -n 1
}

is_running() {
    [[ -f "$PGROOT/data/PG_VERSION" ]] || return 1
    as_owner "$BINDIR/pg_ctl" -D "$PGROOT/data" status >/dev/null 2>&1
}

is_ready() {
    local port
    port="$(port_of)"
    [[ -n "$port" ]] || return 1
    "$(tool pg_isready)" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -t 3
}

write_env() {
    echo "DEALREG_TEST_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:$(port_of)/dealreg" \
        >"$STATE/postgres.env"
    cat "$STATE/postgres.env"
}

set_state() {
    STATE="$(cd "$1" && pwd)"
    PGROOT="$STATE/pg"
}

stop() {
    [[ -d "$PGROOT/data" ]] || return 0
    find_bindir
    if is_running; then
        log "stopping cluster in $PGROOT/data"
        as_owner "$BINDIR/pg_ctl" -D "$PGROOT/data" -m fast -w -t 30 stop >/dev/null
    fi
}

status() {
    [[ -d "$PGROOT/data" ]] || return 1
    find_bindir
    is_running && is_ready
}

start() {
    mkdir -p "$1"
    set_state "$1"
    find_bindir

    if [[ -f "$STATE/postgres.env" ]] && status; then
        log "cluster already running and ready"
        cat "$STATE/postgres.env"
        return 0
    fi
    # Leftovers of a dead or unhealthy cluster: this is a throw-away cluster, start afresh.
    stop
    rm -rf "$PGROOT" "$STATE/postgres.env"
    mkdir -p "$PGROOT/sock"

    if [[ $EUID -eq 0 ]]; then
        [[ -n "$RUNUSER" ]] || die "runuser (util-linux) is needed to run PostgreSQL as '$PG_USER_SYSTEM' when root"
        id "$PG_USER_SYSTEM" >/dev/null 2>&1 \
            || die "running as root but there is no '$PG_USER_SYSTEM' system user (apt-get install -y postgresql creates it)"
        chown -R "$PG_USER_SYSTEM:" "$PGROOT"
        # The postgres user must be able to reach STATE_DIR/pg: mkdtemp makes 0700 directories.
        chmod o+x "$STATE"
        "$RUNUSER" -u "$PG_USER_SYSTEM" -- test -w "$PGROOT" \
            || die "user '$PG_USER_SYSTEM' cannot reach $PGROOT (a parent directory is not searchable by it); use a STATE_DIR under /tmp"
    fi

    as_owner "$BINDIR/initdb" -D "$PGROOT/data" -A trust -U postgres --no-sync -E UTF8 \
        --locale=C >"$PGROOT/initdb.log" 2>&1 \
        || { cat "$PGROOT/initdb.log" >&2; die "initdb failed"; }

    local port
    port="$(free_port)"
    # Throw-away test cluster ONLY: durability is off (fsync, synchronous_commit,
    # full_page_writes) for speed. Never use these settings for real data.
    cat >>"$PGROOT/data/postgresql.conf" <<EOF

# --- deploy/postgres.sh: throw-away test/development cluster, durability OFF ---
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PGROOT/sock'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
    # Opt-in statement counts (tests/bench/profile_distributed.py prints them per decision).
    if [[ "${DEALREG_PG_STAT_STATEMENTS:-0}" == 1 ]]; then
        echo "shared_preload_libraries = 'pg_stat_statements'" >>"$PGROOT/data/postgresql.conf"
    fi
    if [[ $EUID -eq 0 ]]; then chown "$PG_USER_SYSTEM:" "$PGROOT/data/postgresql.conf"; fi

    log "starting cluster in $PGROOT/data on 127.0.0.1:$port"
    if ! as_owner "$BINDIR/pg_ctl" -D "$PGROOT/data" -l "$PGROOT/postgres.log" -w -t 60 start \
            >/dev/null; then
        tail -n 40 "$PGROOT/postgres.log" >&2 || true
        die "pg_ctl start failed"
    fi
    local ok=""
    for _ in $(seq 1 120); do
        if is_ready; then ok=1; break; fi
        sleep 0.25
    done
    [[ -n "$ok" ]] || { tail -n 40 "$PGROOT/postgres.log" >&2; die "PostgreSQL not ready after 30 s"; }

    "$(tool psql)" -q -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres \
        -c 'CREATE DATABASE dealreg' >/dev/null \
        || die "could not create database dealreg"
    write_env
}

cmd="${1:-}"
case "$cmd" in
    start) [[ $# -eq 2 ]] || usage; start "$2" ;;
    stop)
        [[ $# -eq 2 ]] || usage
        [[ -d "$2" ]] || exit 0
        set_state "$2"; stop ;;
    status)
        [[ $# -eq 2 ]] || usage
        [[ -d "$2" ]] || exit 1
        set_state "$2"; status ;;
    *) usage ;;
esac
