#!/usr/bin/env bash
# Local Kafka + PostgreSQL for development and tests, without Docker.
#
#   deploy/services.sh up [STATE_DIR]      start both (no-op when already running and healthy)
#   deploy/services.sh down [STATE_DIR]    stop both (idempotent)
#   deploy/services.sh status [STATE_DIR]  exit 0 when both run and answer
#
# STATE_DIR defaults to <repo>/.services. `up` writes STATE_DIR/env with
# DEALREG_TEST_KAFKA_BOOTSTRAP_SERVERS and DEALREG_TEST_DATABASE_URL, so that
#
#   set -a; . .services/env; set +a
#
# makes the test suite use these servers instead of starting its own.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPT_DIR/.." && pwd)"

usage() {
    echo "usage: $0 up|down|status [STATE_DIR]  (default STATE_DIR: $REPO/.services)" >&2
    exit 2
}

[[ $# -ge 1 && $# -le 2 ]] || usage
cmd="$1"
STATE="${2:-$REPO/.services}"

case "$cmd" in
    up)
        mkdir -p "$STATE"
        STATE="$(cd "$STATE" && pwd)"
        # Both start in parallel; each script reuses its server when it is already running
        # and healthy.
        bash "$SCRIPT_DIR/postgres.sh" start "$STATE" >/dev/null &
        pg_pid=$!
        kafka_rc=0
        bash "$SCRIPT_DIR/kafka.sh" start "$STATE" >/dev/null || kafka_rc=$?
        pg_rc=0
        wait "$pg_pid" || pg_rc=$?
        [[ $pg_rc -eq 0 ]] || echo "services.sh: PostgreSQL failed to start" >&2
        [[ $kafka_rc -eq 0 ]] || echo "services.sh: Kafka failed to start" >&2
        [[ $pg_rc -eq 0 && $kafka_rc -eq 0 ]] || exit 1
        cat "$STATE/kafka.env" "$STATE/postgres.env" >"$STATE/env.tmp"
        mv "$STATE/env.tmp" "$STATE/env"
        cat "$STATE/env"
        echo "services.sh: to use them: set -a; . $STATE/env; set +a" >&2
        ;;
    down)
        [[ -d "$STATE" ]] || exit 0
        rc=0
        bash "$SCRIPT_DIR/kafka.sh" stop "$STATE" || rc=1
        bash "$SCRIPT_DIR/postgres.sh" stop "$STATE" || rc=1
        rm -f "$STATE/env"
        exit "$rc"
        ;;
    status)
        [[ -d "$STATE" ]] || exit 1
        bash "$SCRIPT_DIR/kafka.sh" status "$STATE" && bash "$SCRIPT_DIR/postgres.sh" status "$STATE"
        ;;
    *) usage ;;
esac
