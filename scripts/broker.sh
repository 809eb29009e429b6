#!/usr/bin/env bash
# Local single-node Apache Kafka 4.1.1 broker (KRaft, broker+controller in one JVM)
# for development and tests.
#
#   scripts/broker.sh start    start it (idempotent) and wait until it answers metadata
#   scripts/broker.sh stop     stop it by the PID in its pid file (idempotent)
#   scripts/broker.sh status   exit 0 if a broker answers on the port, 1 otherwise
#
# Why this and not a Kafka tarball or a container: the only thing reachable here is
# Maven Central, so the broker's classpath is resolved from scripts/kafka/pom.xml with
# Maven and cached outside the repo, shared by every clone on the machine.
#
# Environment (defaults in brackets):
#   KAFKA_PORT                    client listener on 127.0.0.1 [9092]
#   KAFKA_CONTROLLER_PORT         KRaft controller listener on 127.0.0.1 [9093]
#   BROKER_DIR                    state: server.properties, kafka.log, kafka.pid [<repo>/.broker]
#   KAFKA_DATA_DIR                log.dirs (topic data + metadata log) [$BROKER_DIR/data]
#   KAFKA_JARS_DIR                jar cache [${XDG_CACHE_HOME:-$HOME/.cache}/sensor-anomaly/kafka-4.1.1]
#   KAFKA_HEAP_OPTS               JVM heap flags [-Xms256m -Xmx1g]
#   BROKER_START_TIMEOUT_SECONDS  how long start waits for the broker to answer [90]
#   BROKER_STOP_TIMEOUT_SECONDS   how long stop waits after SIGTERM before SIGKILL [20]
#   PYTHON                        interpreter with confluent_kafka [<repo>/.venv/bin/python, else python3]
#   JAVA_HOME                     if set, $JAVA_HOME/bin/java is used instead of java on PATH
set -euo pipefail

readonly KAFKA_VERSION="4.1.1"

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
REPO_ROOT="$(cd -- "$SCRIPT_DIR/.." && pwd -P)"
readonly SCRIPT_DIR REPO_ROOT

readonly HOST="127.0.0.1"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
BROKER_DIR="${BROKER_DIR:-$REPO_ROOT/.broker}"
KAFKA_DATA_DIR="${KAFKA_DATA_DIR:-$BROKER_DIR/data}"
KAFKA_JARS_DIR="${KAFKA_JARS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sensor-anomaly/kafka-$KAFKA_VERSION}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}"
BROKER_START_TIMEOUT_SECONDS="${BROKER_START_TIMEOUT_SECONDS:-90}"
BROKER_STOP_TIMEOUT_SECONDS="${BROKER_STOP_TIMEOUT_SECONDS:-20}"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$REPO_ROOT/.venv/bin/python" ]]; then
    PYTHON="$REPO_ROOT/.venv/bin/python"
  else
    PYTHON="python3"
  fi
fi
if [[ -n "${JAVA_HOME:-}" ]]; then
  JAVA="$JAVA_HOME/bin/java"
else
  JAVA="java"
fi

readonly POM="$SCRIPT_DIR/kafka/pom.xml"
readonly LOG4J2_CONFIG="$SCRIPT_DIR/kafka/log4j2.xml"
readonly WAIT_FOR_BROKER="$SCRIPT_DIR/wait_for_broker.py"
readonly JARS_MARKER_NAME=".complete"
PID_FILE="$BROKER_DIR/kafka.pid"
LOG_FILE="$BROKER_DIR/kafka.log"
PROPS_FILE="$BROKER_DIR/server.properties"
ADDRESS="$HOST:$KAFKA_PORT"

die() {
  echo "error: $*" >&2
  exit 1
}

require_port() {
  local name="$1" value="$2"
  if ! [[ "$value" =~ ^[0-9]+$ ]] || ((value < 1 || value > 65535)); then
    die "$name must be a TCP port number, got '$value'"
  fi
}

require_seconds() {
  local name="$1" value="$2"
  [[ "$value" =~ ^[0-9]+$ ]] || die "$name must be a whole number of seconds, got '$value'"
}

# Is a TCP port on $HOST accepting connections? (bash's /dev/tcp: no extra tools.)
port_open() {
  (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

# Does a Kafka broker answer a metadata request on the client port within $1 seconds?
broker_answers() {
  "$PYTHON" "$WAIT_FOR_BROKER" --brokers "$ADDRESS" --timeout "$1" 2>/dev/null
}

# Print the PID from the pid file if it is a live java running kafka.Kafka with *our*
# server.properties; return 1 otherwise. Guards against PID reuse after a reboot or crash:
# we must never signal a process that is not the broker we started.
our_broker_pid() {
  local pid args
  [[ -f "$PID_FILE" ]] || return 1
  pid="$(tr -dc '0-9' <"$PID_FILE")"
  [[ -n "$pid" ]] || return 1
  args="$(ps -o args= -p "$pid" 2>/dev/null)" || return 1
  [[ "$args" == *java* && "$args" == *kafka.Kafka* && "$args" == *"$PROPS_FILE"* ]] || return 1
  echo "$pid"
}

# Client port the broker started from BROKER_DIR is really using (from the server.properties
# it was started with), so start/status report the truth even if KAFKA_PORT differs now.
running_port() {
  local port
  port="$(sed -n 's|^advertised\.listeners=PLAINTEXT://[^:]*:\([0-9]*\).*|\1|p' "$PROPS_FILE" 2>/dev/null)"
  echo "${port:-$KAFKA_PORT}"
}

# Take an exclusive lock on BROKER_DIR so two concurrent start/stop calls don't race.
# fd 8 is closed for the broker JVM itself (see start), so the lock ends with this script.
lock_broker_dir() {
  mkdir -p "$BROKER_DIR"
  if command -v flock >/dev/null 2>&1; then
    exec 8>"$BROKER_DIR/.lock"
    flock 8
  fi
}

check_python() {
  "$PYTHON" -c 'import confluent_kafka' 2>/dev/null \
    || die "$PYTHON cannot import confluent_kafka (needed by scripts/wait_for_broker.py); create the venv first or set PYTHON"
}

check_java() {
  command -v "$JAVA" >/dev/null 2>&1 || die "java not found (Kafka $KAFKA_VERSION needs Java 17+); install a JDK or set JAVA_HOME"
  local spec
  spec="$("$JAVA" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = //p')"
  spec="${spec%%.*}"
  if [[ "$spec" =~ ^[0-9]+$ ]] && ((spec < 17)); then
    die "Kafka $KAFKA_VERSION needs Java 17+, but $JAVA is Java $spec"
  fi
}

jars_complete() {
  [[ -f "$KAFKA_JARS_DIR/$JARS_MARKER_NAME" ]] \
    && [[ "$(cat "$KAFKA_JARS_DIR/$JARS_MARKER_NAME")" == "$(sha256sum "$POM" | cut -d' ' -f1)" ]] \
    && compgen -G "$KAFKA_JARS_DIR/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null
}

# Resolve the broker classpath with Maven into KAFKA_JARS_DIR, once. The marker holds
# the pom's hash, so editing the pom refreshes the cache. Copies go to a temporary
# directory renamed into place, so an interrupted download never looks complete.
ensure_jars() {
  if jars_complete; then
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "mvn not found; it is needed once to fetch the Kafka jars into $KAFKA_JARS_DIR"
  local parent tmp
  parent="$(dirname -- "$KAFKA_JARS_DIR")"
  mkdir -p "$parent"
  if command -v flock >/dev/null 2>&1; then
    # Shared between clones: serialise concurrent fetches.
    exec 9>"$KAFKA_JARS_DIR.lock"
    flock 9
    if jars_complete; then
      exec 9>&-
      return 0
    fi
  fi
  echo "fetching Kafka $KAFKA_VERSION jars with Maven into $KAFKA_JARS_DIR (first run only)..."
  tmp="$(mktemp -d "$KAFKA_JARS_DIR.tmp.XXXXXX")"
  # Debian's Maven 3.8 prints stray ANSI resets even with -B -q; strip them (pipefail
  # keeps mvn's own exit status).
  if ! mvn -B -q -f "$POM" dependency:copy-dependencies \
    -DoutputDirectory="$tmp" -DincludeScope=runtime 2>&1 \
    | sed -e 's/\x1b\[[0-9;]*m//g' -e '/^[[:space:]]*$/d' >&2; then
    rm -rf -- "$tmp"
    die "Maven could not fetch the Kafka jars (see its output above)"
  fi
  sha256sum "$POM" | cut -d' ' -f1 >"$tmp/$JARS_MARKER_NAME"
  rm -rf -- "$KAFKA_JARS_DIR"
  mv -- "$tmp" "$KAFKA_JARS_DIR"
  if command -v flock >/dev/null 2>&1; then
    exec 9>&-
  fi
  echo "fetched $(find "$KAFKA_JARS_DIR" -name '*.jar' | wc -l) jars"
}

# Regenerated on every start so port/dir overrides always take effect.
write_server_properties() {
  cat >"$PROPS_FILE" <<EOF
# Generated by scripts/broker.sh on every start; edits here are overwritten.
# Single-node KRaft: this JVM is both the broker and the (only) controller.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT

listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT

log.dirs=$KAFKA_DATA_DIR

# One node: every internal topic has exactly one replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1

# One node, dev load: a single partition per internal topic (instead of 50) makes the
# first consumer group / transaction start quickly and keeps the data dir small.
offsets.topic.num.partitions=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.num.partitions=1

# Dev/test defaults: no rebalance delay, topics appear on first use.
group.initial.rebalance.delay.ms=0
num.partitions=1
auto.create.topics.enable=true
delete.topic.enable=true

# Small machine (2 cores).
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1

# Keep disk use bounded on a dev box: 24 h or 256 MiB per partition, 16 MiB segments.
log.retention.hours=24
log.retention.bytes=268435456
log.segment.bytes=16777216
log.retention.check.interval.ms=60000
EOF
}

# Python's uuid4 -> 22-char base64url, the format Kafka's Uuid uses. Like Kafka's
# Uuid.randomUuid, avoid ids starting with '-' (they look like command-line options).
new_cluster_id() {
  "$PYTHON" - <<'EOF'
import base64, uuid
while True:
    cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    if not cid.startswith("-"):
        print(cid)
        break
EOF
}

format_storage_if_needed() {
  if [[ -f "$KAFKA_DATA_DIR/meta.properties" ]]; then
    return 0
  fi
  mkdir -p "$KAFKA_DATA_DIR"
  local cluster_id
  cluster_id="$(new_cluster_id)"
  echo "formatting $KAFKA_DATA_DIR (cluster id $cluster_id)"
  # No --standalone: the quorum is given statically by controller.quorum.voters.
  if ! "$JAVA" -Dlog4j2.configurationFile="$LOG4J2_CONFIG" -cp "$KAFKA_JARS_DIR/*" \
    kafka.tools.StorageTool format -t "$cluster_id" -c "$PROPS_FILE" >"$BROKER_DIR/format.log" 2>&1; then
    cat "$BROKER_DIR/format.log" >&2
    die "formatting $KAFKA_DATA_DIR failed"
  fi
}

print_log_tail() {
  if [[ -f "$LOG_FILE" ]]; then
    echo "---- last 30 lines of $LOG_FILE ----" >&2
    tail -n 30 -- "$LOG_FILE" >&2
    echo "----" >&2
  fi
}

# SIGTERM, wait up to BROKER_STOP_TIMEOUT_SECONDS, then SIGKILL. Only ever by PID.
terminate_pid() {
  local pid="$1" waited=0
  kill -TERM "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null; do
    if ((waited >= BROKER_STOP_TIMEOUT_SECONDS * 10)); then
      echo "broker (pid $pid) still running after ${BROKER_STOP_TIMEOUT_SECONDS} s; sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
      break
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
}

cmd_start() {
  require_port KAFKA_PORT "$KAFKA_PORT"
  require_port KAFKA_CONTROLLER_PORT "$KAFKA_CONTROLLER_PORT"
  require_seconds BROKER_START_TIMEOUT_SECONDS "$BROKER_START_TIMEOUT_SECONDS"
  require_seconds BROKER_STOP_TIMEOUT_SECONDS "$BROKER_STOP_TIMEOUT_SECONDS"
  [[ "$KAFKA_PORT" != "$KAFKA_CONTROLLER_PORT" ]] || die "KAFKA_PORT and KAFKA_CONTROLLER_PORT must differ"
  check_python
  lock_broker_dir

  local pid port
  if pid="$(our_broker_pid)"; then
    port="$(running_port)"
    echo "broker already running on $HOST:$port (pid $pid)"
    if [[ "$port" != "$KAFKA_PORT" ]]; then
      echo "warning: it listens on $port, not KAFKA_PORT=$KAFKA_PORT; stop it first to change ports" >&2
    fi
    return 0
  fi
  if port_open "$KAFKA_PORT"; then
    if broker_answers 5; then
      echo "broker already running on $ADDRESS"
      return 0
    fi
    die "port $KAFKA_PORT on $HOST is in use by something that is not an answering Kafka broker"
  fi
  if port_open "$KAFKA_CONTROLLER_PORT"; then
    die "controller port $KAFKA_CONTROLLER_PORT on $HOST is already in use (set KAFKA_CONTROLLER_PORT)"
  fi
  rm -f -- "$PID_FILE" # stale: its process is gone or is not our broker

  check_java
  ensure_jars
  write_server_properties
  format_storage_if_needed

  local heap_opts
  read -r -a heap_opts <<<"$KAFKA_HEAP_OPTS"
  if [[ -f "$LOG_FILE" ]]; then
    mv -f -- "$LOG_FILE" "$LOG_FILE.prev"
  fi
  # setsid + nohup: the broker outlives this shell and ignores the terminal's Ctrl-C/hangup.
  # In a script (no job control) the background child is not a process-group leader, so
  # setsid execs in place and $! is the java PID itself. fds 8/9 (our locks) are closed.
  nohup setsid "$JAVA" "${heap_opts[@]}" \
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$LOG4J2_CONFIG" \
    -cp "$KAFKA_JARS_DIR/*" kafka.Kafka "$PROPS_FILE" \
    </dev/null >"$LOG_FILE" 2>&1 8>&- 9>&- &
  pid=$!
  echo "$pid" >"$PID_FILE"

  # Wait for a real metadata answer, but give up at once if the JVM dies.
  "$PYTHON" "$WAIT_FOR_BROKER" --brokers "$ADDRESS" --timeout "$BROKER_START_TIMEOUT_SECONDS" 8>&- 9>&- &
  local waiter=$!
  while kill -0 "$waiter" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$waiter" 2>/dev/null || true
      wait "$waiter" 2>/dev/null || true
      rm -f -- "$PID_FILE"
      print_log_tail
      die "broker process $pid exited during start-up (log: $LOG_FILE)"
    fi
    sleep 0.2
  done
  if ! wait "$waiter"; then
    # Don't leave a half-started broker behind holding the ports and the pid file.
    terminate_pid "$pid"
    rm -f -- "$PID_FILE"
    print_log_tail
    die "broker did not answer on $ADDRESS within $BROKER_START_TIMEOUT_SECONDS s; stopped it (log: $LOG_FILE)"
  fi
  echo "broker up on $ADDRESS (pid $pid, log $LOG_FILE)"
}

cmd_stop() {
  require_seconds BROKER_STOP_TIMEOUT_SECONDS "$BROKER_STOP_TIMEOUT_SECONDS"
  if [[ ! -d "$BROKER_DIR" ]]; then
    echo "broker not running"
    return 0
  fi
  lock_broker_dir
  local pid
  if ! pid="$(our_broker_pid)"; then
    rm -f -- "$PID_FILE"
    echo "broker not running"
    return 0
  fi
  terminate_pid "$pid"
  rm -f -- "$PID_FILE"
  echo "broker stopped (pid $pid)"
}

cmd_status() {
  check_python
  local pid
  if pid="$(our_broker_pid)"; then
    ADDRESS="$HOST:$(running_port)"
    if broker_answers 5; then
      echo "broker running on $ADDRESS (pid $pid, log $LOG_FILE)"
      return 0
    fi
    echo "broker process $pid is alive but not answering on $ADDRESS (log $LOG_FILE)"
    return 1
  fi
  if port_open "$KAFKA_PORT" && broker_answers 5; then
    echo "broker running on $ADDRESS (not started from $BROKER_DIR)"
    return 0
  fi
  echo "broker not running"
  return 1
}

usage() {
  echo "usage: $(basename -- "$0") start|stop|status" >&2
}

main() {
  if (($# != 1)); then
    usage
    exit 2
  fi
  case "$1" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    -h | --help | help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
      ;;
    *)
      usage
      exit 2
      ;;
  esac
}

main "$@"
