#!/usr/bin/env bash
# A real, throw-away Apache Kafka 4.1.1 broker for tests and development: one combined
# broker+controller in KRaft mode on 127.0.0.1, run from the release jars on Maven Central
# (Java 17 + Maven, no Docker needed).
#
#   deploy/kafka.sh fetch             fetch/cache the broker jars only
#   deploy/kafka.sh start STATE_DIR   start (or reuse a healthy) broker; writes STATE_DIR/kafka.env
#   deploy/kafka.sh stop STATE_DIR    stop it (idempotent)
#   deploy/kafka.sh status STATE_DIR  exit 0 when it runs and answers
#
# Environment:
#   DEALREG_CACHE_DIR   jar cache root (default ~/.cache/dealreg); jars go to kafka-4.1.1/libs
#   JAVA                java binary (default: java on PATH)
#   PYTHON              python with aiokafka, for the readiness check (default: python3)
#   KAFKA_HEAP_OPTS     default -Xmx768m
#   KAFKA_READY_TIMEOUT seconds to wait for readiness (default 60)
#
# Files in STATE_DIR/kafka: server.properties, log4j2.properties, broker.log (the broker's
# log4j log), stdout.log (JVM stdout/stderr), pid, data/ (log.dirs).
set -euo pipefail

KAFKA_VERSION=4.1.1
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$SCRIPT_DIR/kafka/pom.xml"
CACHE_ROOT="${DEALREG_CACHE_DIR:-$HOME/.cache/dealreg}"
KAFKA_HOME="$CACHE_ROOT/kafka-$KAFKA_VERSION"
LIBS="$KAFKA_HOME/libs"
MARKER="$LIBS/.complete"
JAVA="${JAVA:-java}"
PYTHON="${PYTHON:-python3}"
READY_TIMEOUT="${KAFKA_READY_TIMEOUT:-60}"

log() { echo "kafka.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() {
    echo "usage: $0 fetch | start STATE_DIR | stop STATE_DIR | status STATE_DIR" >&2
    exit 2
}

# ---------------------------------------------------------------------------------- fetch
fetch() {
    if [[ -f "$MARKER" ]]; then
        return 0
    fi
    command -v mvn >/dev/null || die "Maven (mvn) is required to fetch the Kafka jars (apt-get install -y maven)"
    mkdir -p "$KAFKA_HOME"
    # Serialise concurrent fetches (several test processes starting at once).
    exec 9>"$KAFKA_HOME/.fetch.lock"
    flock 9
    if [[ -f "$MARKER" ]]; then
        exec 9>&-
        return 0
    fi
    local tmp="$KAFKA_HOME/libs.tmp.$$"
    rm -rf "$tmp" "$LIBS"
    log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $LIBS"
    local mvn_log="$KAFKA_HOME/mvn.log"
    if ! mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
            -DoutputDirectory="$tmp" >"$mvn_log" 2>&1; then
        cat "$mvn_log" >&2
        rm -rf "$tmp"
        die "mvn dependency:copy-dependencies failed (see above)"
    fi
    [[ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] || die "kafka_2.13-$KAFKA_VERSION.jar missing after fetch"
    ls "$tmp" >"$tmp/.complete"
    mv "$tmp" "$LIBS"
    exec 9>&-
    log "cached $(($(wc -l <"$MARKER"))) jars in $LIBS"
}

# ------------------------------------------------------------------------------- helpers
free_port() {
    "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Exit 0 when the broker at $1 answers a describe-cluster request AND a group-coordinator
# look-up (the first look-up creates __consumer_offsets; right after the port opens it answers
# GroupCoordinatorNotAvailable for a while). Retries until $2 seconds have passed.
wait_ready() {
    "$PYTHON" - "$1" "$2" <<'PY'
import asyncio
import logging
import sys
import time

from aiokafka.admin import AIOKafkaAdminClient

logging.basicConfig(level=logging.CRITICAL)
bootstrap, timeout = sys.argv[1], float(sys.argv[2])


async def once() -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await asyncio.wait_for(admin.start(), 10)
    try:
        cluster = await asyncio.wait_for(admin.describe_cluster(), 10)
        if not cluster.get("brokers"):
            raise RuntimeError("no brokers in describe-cluster response")
        await asyncio.wait_for(admin.find_coordinator("dealreg-readiness-probe"), 10)
        await asyncio.wait_for(admin.list_topics(), 10)
    finally:
        await admin.close()


async def main() -> int:
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            await once()
            return 0
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            last = exc
            await asyncio.sleep(0.5)
    print(f"kafka at {bootstrap} not ready after {timeout:.0f}s: {last!r}", file=sys.stderr)
    return 1


sys.exit(asyncio.run(main()))
PY
}

# Prints the pid when STATE_DIR's broker process is alive (and really is our Kafka).
running_pid() {
    local pidfile="$1/kafka/pid" pid
    [[ -f "$pidfile" ]] || return 1
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # Guard against a recycled pid.
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
    echo "$pid"
}

bootstrap_of() {
    sed -n 's/^DEALREG_TEST_KAFKA_BOOTSTRAP_SERVERS=//p' "$1/kafka.env" 2>/dev/null || true
}

print_log_tail() {
    local dir="$1/kafka"
    for f in "$dir/broker.log" "$dir/stdout.log"; do
        if [[ -s "$f" ]]; then
            echo "----- last lines of $f -----" >&2
            tail -n 60 "$f" >&2
        fi
    done
}

# ---------------------------------------------------------------------------------- stop
stop() {
    local state="$1" pid
    if pid="$(running_pid "$state")"; then
        log "stopping broker (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 200); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "broker did not stop within 20 s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
        fi
    fi
    rm -f "$state/kafka/pid"
}

# --------------------------------------------------------------------------------- status
status() {
    local state="$1" bootstrap
    running_pid "$state" >/dev/null || return 1
    bootstrap="$(bootstrap_of "$state")"
    [[ -n "$bootstrap" ]] || return 1
    wait_ready "$bootstrap" 5 2>/dev/null
}

# --------------------------------------------------------------------------------- start
start() {
    local state="$1"
    mkdir -p "$state"
    state="$(cd "$state" && pwd)"

    if status "$state"; then
        log "broker already running and ready"
        cat "$state/kafka.env"
        return 0
    fi
    # Leftovers of a dead or unhealthy broker: this is a throw-away broker, start afresh.
    stop "$state"
    rm -rf "$state/kafka" "$state/kafka.env"

    command -v "$JAVA" >/dev/null || die "java not found (Java 17+ is required: apt-get install -y openjdk-17-jre-headless)"
    "$PYTHON" -c 'import aiokafka' 2>/dev/null \
        || die "$PYTHON cannot import aiokafka (pip install aiokafka==0.14.0), needed for the readiness check"
    fetch

    local dir="$state/kafka"
    mkdir -p "$dir/data"
    local port cport
    port="$(free_port)"
    cport="$(free_port)"
    while [[ "$cport" == "$port" ]]; do cport="$(free_port)"; done

    cat >"$dir/server.properties" <<EOF
# Single-node KRaft broker+controller for tests/development. Generated by deploy/kafka.sh.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=12
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=12
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# transaction.max.timeout.ms: broker default (15 min)
EOF

    # Kafka 4.x logs through Log4j 2 (SLF4J binding log4j-slf4j-impl); without a config
    # Log4j 2 would print only errors to the console.
    cat >"$dir/log4j2.properties" <<EOF
status = warn
name = dealreg-local-kafka
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $dir/broker.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.request.name = kafka.request.logger
logger.request.level = WARN
EOF

    local heap="${KAFKA_HEAP_OPTS:--Xmx768m}"
    # shellcheck disable=SC2206
    local jvm=($heap -XX:+UseG1GC -Djava.awt.headless=true
               "-Dlog4j2.configurationFile=$dir/log4j2.properties"
               "-Dkafka.logs.dir=$dir" -cp "$LIBS/*")

    local cluster_id
    cluster_id="$("$JAVA" "${jvm[@]}" kafka.tools.StorageTool random-uuid 2>>"$dir/stdout.log" | tail -n 1)"
    [[ -n "$cluster_id" ]] || { print_log_tail "$state"; die "StorageTool random-uuid failed"; }
    if ! "$JAVA" "${jvm[@]}" kafka.tools.StorageTool format -t "$cluster_id" \
            -c "$dir/server.properties" >>"$dir/stdout.log" 2>&1; then
        print_log_tail "$state"
        die "StorageTool format failed"
    fi

    # Own session (setsid) so a Ctrl-C in the calling terminal does not hit the broker; the
    # inner bash records its pid and execs java, so the pid file names the JVM itself.
    setsid nohup bash -c 'echo $$ >"$0"; exec "$@"' "$dir/pid" \
        "$JAVA" "${jvm[@]}" kafka.Kafka "$dir/server.properties" \
        </dev/null >>"$dir/stdout.log" 2>&1 &
    for _ in $(seq 1 50); do
        [[ -s "$dir/pid" ]] && break
        sleep 0.1
    done
    [[ -s "$dir/pid" ]] || die "broker process did not start"

    local bootstrap="127.0.0.1:$port"
    log "broker pid $(cat "$dir/pid") on $bootstrap; waiting for readiness (up to ${READY_TIMEOUT}s)"
    if ! wait_ready "$bootstrap" "$READY_TIMEOUT"; then
        print_log_tail "$state"
        stop "$state"
        die "broker did not become ready"
    fi
    if ! running_pid "$state" >/dev/null; then
        print_log_tail "$state"
        die "broker exited"
    fi
    echo "DEALREG_TEST_KAFKA_BOOTSTRAP_SERVERS=$bootstrap" >"$state/kafka.env"
    cat "$state/kafka.env"
}

# ----------------------------------------------------------------------------------- main
cmd="${1:-}"
case "$cmd" in
    fetch) [[ $# -eq 1 ]] || usage; fetch ;;
    start) [[ $# -eq 2 ]] || usage; start "$2" ;;
    stop) [[ $# -eq 2 ]] || usage; [[ -d "$2" ]] && stop "$(cd "$2" && pwd)"; exit 0 ;;
    status) [[ $# -eq 2 ]] || usage; [[ -d "$2" ]] || exit 1; status "$(cd "$2" && pwd)" ;;
    *) usage ;;
esac
