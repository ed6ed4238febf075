#!/usr/bin/env bash
# A real single-node Apache Kafka broker in a directory, for the tests and for users
# without a cluster: KRaft combined mode (broker + controller in one JVM), loopback only.
#
#   scripts/kafka.sh start DIR [PORT]   # PORT: the PLAINTEXT listener, default 9092
#   scripts/kafka.sh stop DIR           # SIGTERM, SIGKILL after 30 s (and says so)
#   scripts/kafka.sh status DIR         # exit 0 "running ...", exit 3 "stopped"
#   scripts/kafka.sh kill DIR           # SIGKILL, for crash tests
#
# DIR holds everything: server.properties, data/ (topics; formatted once, so a restart keeps
# them), logs/ (server.log, kafka.out) and broker.pid. `start` returns once the broker
# answers a Kafka API request (a metadata request from kafka-python in the project's .venv),
# so callers can use it straight away. The jars come from scripts/services/kafka.sh.
# tests/realdb/kafka.py drives this script: it is the one recipe for the broker.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${EXFIL_KAFKA_PYTHON:-$ROOT/.venv/bin/python}"
START_TIMEOUT="${EXFIL_KAFKA_START_TIMEOUT:-60}"
STOP_TIMEOUT=30
# A test or dev broker: a modest heap leaves room for the tests on a 2-core CI machine.
HEAP="${EXFIL_KAFKA_HEAP:-512m}"

usage() {
    sed -n '5,8p' "$0" | sed 's/^# *//' >&2
    exit 2
}

die() {
    echo "kafka.sh: $*" >&2
    exit 1
}

(($# >= 2)) || usage
cmd=$1
dir=$2

# Prints the broker's pid when DIR/broker.pid names a live broker of this DIR. The command
# line is checked because a pid can be reused after a crash; a zombie counts as gone (PID 1
# of a container may never reap a broker whose starter has exited).
running_pid() {
    local pidfile="$dir/broker.pid" pid state
    [[ -f $pidfile ]] || return 1
    pid="$(<"$pidfile")"
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    state="$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
    [[ -n $state && $state != Z ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null \
        | grep -qF -- "kafka.Kafka $dir/server.properties" || return 1
    echo "$pid"
}

prop_port() {
    # The port of listener $1 in an existing server.properties (empty if none).
    [[ -f "$dir/server.properties" ]] || return 0
    sed -n "s|^listeners=.*$1://127\.0\.0\.1:\([0-9]*\).*|\1|p" "$dir/server.properties"
}

log_tail() {
    local f
    for f in "$dir/logs/server.log" "$dir/logs/kafka.out"; do
        if [[ -s $f ]]; then
            echo "--- last lines of $f" >&2
            tail -n 40 "$f" >&2
        fi
    done
}

wait_gone() {
    # Waits up to $1 seconds for the broker to exit; true once it has.
    local deadline=$((SECONDS + $1))
    while running_pid >/dev/null; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

java_opts() {
    echo "-Xms128m -Xmx$HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20"
    echo "-XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true"
    echo "-Dlog4j2.configurationFile=$ROOT/scripts/services/kafka/log4j2.properties"
    echo "-Dkafka.logs.dir=$dir/logs"
    # log4j's own shutdown hook would close server.log before Kafka logs its shutdown.
    echo "-Dlog4j2.shutdownHookEnabled=false"
}

write_config() {
    local port=$1 cport=$2
    # Optional SASL/PLAIN listener for clients that must authenticate (tests of the
    # detector's SASL settings): EXFIL_KAFKA_SASL_PORT and EXFIL_KAFKA_SASL_USERS
    # ("user:password[,user:password]"). Inter-broker traffic stays on PLAINTEXT.
    local listeners="PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport"
    local protocols="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    local sasl=""
    if [[ -n ${EXFIL_KAFKA_SASL_PORT:-} && -n ${EXFIL_KAFKA_SASL_USERS:-} ]]; then
        listeners+=",SASL_PLAINTEXT://127.0.0.1:$EXFIL_KAFKA_SASL_PORT"
        protocols+=",SASL_PLAINTEXT:SASL_PLAINTEXT"
        local jaas="org.apache.kafka.common.security.plain.PlainLoginModule required" pair
        local -a pairs
        IFS=',' read -ra pairs <<<"$EXFIL_KAFKA_SASL_USERS"
        for pair in "${pairs[@]}"; do
            jaas+=" user_${pair%%:*}=\"${pair#*:}\""
        done
        sasl="sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=$jaas;"
    fi
    cat >"$dir/server.properties" <<EOF
# Written by scripts/kafka.sh on every start (edits are lost): a single-node KRaft broker.
process.roles=broker,controller
node.id=1
listeners=$listeners
advertised.listeners=$listeners
listener.security.protocol.map=$protocols
$sasl
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
controller.quorum.bootstrap.servers=127.0.0.1:$cport
log.dirs=$dir/data
num.partitions=1
# One broker: every internal topic has one replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# The default 50 offsets partitions only slow a one-node broker's first group join.
offsets.topic.num.partitions=1
# Groups form at once instead of waiting 3 s for more members (tests, demos).
group.initial.rebalance.delay.ms=0
EOF
}

start() {
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    exec 9>"$dir/.kafka.lock"
    flock 9
    local pid
    if pid="$(running_pid)"; then
        local running_port
        running_port="$(prop_port PLAINTEXT)"
        if [[ -n ${3:-} && $3 != "$running_port" ]]; then
            die "already running on 127.0.0.1:$running_port (pid $pid), not on port $3"
        fi
        echo "kafka.sh: already running (pid $pid, PLAINTEXT 127.0.0.1:$running_port)"
        return 0
    fi
    rm -f "$dir/broker.pid"
    [[ -x $PY ]] || die "no $PY (the start check uses kafka-python): run scripts/setup.sh"

    local libs
    libs="$(bash "$ROOT/scripts/services/kafka.sh" --print-libs)"

    # A restart keeps its ports: the controller's address is written into the formatted
    # metadata log, and clients keep the bootstrap address they were given.
    local port cport
    port="${3:-$(prop_port PLAINTEXT)}"
    port="${port:-9092}"
    cport="$(prop_port CONTROLLER)"
    cport="$("$PY" - "$port" "$cport" <<'EOF'
import socket, sys

port, cport = int(sys.argv[1]), sys.argv[2]
with socket.socket() as s:
    # as the JVM binds: a port left in TIME_WAIT by the broker's last clients (a restart)
    # is free, one another process listens on is not
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
    except OSError as exc:
        sys.exit(f"kafka.sh: 127.0.0.1:{port} is not free for the broker: {exc.strerror}")
    if not cport:
        # Bound while the first is held, so the two ports differ.
        with socket.socket() as c:
            c.bind(("127.0.0.1", 0))
            cport = c.getsockname()[1]
print(cport)
EOF
    )"
    mkdir -p "$dir/logs" "$dir/data"
    write_config "$port" "$cport"

    # shellcheck disable=SC2046  # java_opts is a list of words
    if [[ ! -f "$dir/data/meta.properties" ]]; then
        local cluster_id
        cluster_id="$("$PY" -c '
import base64, uuid
while (u := base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode())[0] == "-":
    pass
print(u)')"
        if ! java $(java_opts) -cp "$libs/*" kafka.tools.StorageTool format --standalone \
            -t "$cluster_id" -c "$dir/server.properties" >"$dir/logs/format.out" 2>&1; then
            cat "$dir/logs/format.out" >&2
            die "formatting the KRaft storage in $dir/data failed"
        fi
    fi

    echo "=== $(date -u +%FT%TZ) kafka.sh start" >>"$dir/logs/kafka.out"
    # setsid: the broker outlives this script and ignores the caller's terminal signals;
    # its output goes to a file so a caller reading this script's pipes is not held open.
    # shellcheck disable=SC2046
    setsid java $(java_opts) -cp "$libs/*" kafka.Kafka "$dir/server.properties" \
        </dev/null >>"$dir/logs/kafka.out" 2>&1 9>&- &
    pid=$!
    echo "$pid" >"$dir/broker.pid"

    local started=$SECONDS rc=0
    "$PY" - "127.0.0.1:$port" "$pid" "$START_TIMEOUT" <<'EOF' || rc=$?
# Up to TIMEOUT s: a real Kafka API request (metadata, via the admin client's topic list).
import logging, sys, time
from pathlib import Path

from kafka import KafkaAdminClient

logging.getLogger("kafka").setLevel(logging.CRITICAL)  # refused connections while it boots
bootstrap, pid, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
deadline = time.monotonic() + timeout

def alive() -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"

while time.monotonic() < deadline:
    if not alive():
        sys.exit(3)
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap, client_id="exfil-kafka-sh",
            request_timeout_ms=5000, bootstrap_timeout_ms=5000,
        )
        try:
            admin.list_topics()
        finally:
            admin.close()
        sys.exit(0)
    except Exception:
        time.sleep(0.5)
sys.exit(1)
EOF
    if ((rc == 0)); then
        echo "kafka.sh: broker running (pid $pid, PLAINTEXT 127.0.0.1:$port," \
            "controller 127.0.0.1:$cport), answered after $((SECONDS - started)) s; logs in $dir/logs"
        return 0
    fi
    if ((rc == 3)); then
        echo "kafka.sh: the broker exited during startup" >&2
    else
        echo "kafka.sh: the broker did not answer on 127.0.0.1:$port within $START_TIMEOUT s;" \
            "stopping it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    log_tail
    rm -f "$dir/broker.pid"
    exit 1
}

stop() {
    [[ -d $dir ]] || {
        echo "kafka.sh: not running (no $dir)"
        return 0
    }
    dir="$(cd "$dir" && pwd)"
    exec 9>"$dir/.kafka.lock"
    flock 9
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$dir/broker.pid"
        echo "kafka.sh: not running"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    local started=$SECONDS
    if wait_gone "$STOP_TIMEOUT"; then
        echo "kafka.sh: broker stopped (pid $pid, clean shutdown in $((SECONDS - started)) s)"
    else
        kill -KILL "$pid" 2>/dev/null || true
        wait_gone 10 || die "broker pid $pid survived SIGKILL"
        echo "kafka.sh: broker pid $pid did not stop within $STOP_TIMEOUT s of SIGTERM:" \
            "killed it (SIGKILL); the next start recovers its logs"
    fi
    rm -f "$dir/broker.pid"
}

kill_broker() {
    [[ -d $dir ]] || die "no $dir"
    dir="$(cd "$dir" && pwd)"
    local pid
    pid="$(running_pid)" || die "not running"
    kill -KILL "$pid"
    wait_gone 10 || die "broker pid $pid survived SIGKILL"
    # broker.pid is left behind, as after a real crash; start replaces it.
    echo "kafka.sh: broker killed (pid $pid, SIGKILL)"
}

status() {
    local pid
    if [[ -d $dir ]] && dir="$(cd "$dir" && pwd)" && pid="$(running_pid)"; then
        echo "running (pid $pid, PLAINTEXT 127.0.0.1:$(prop_port PLAINTEXT))"
        return 0
    fi
    echo "stopped"
    exit 3
}

case "$cmd" in
    start)
        (($# <= 3)) || usage
        start "$@"
        ;;
    stop) stop ;;
    status) status ;;
    kill) kill_broker ;;
    *) usage ;;
esac
