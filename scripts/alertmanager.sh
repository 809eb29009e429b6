#!/usr/bin/env bash
# Local Prometheus Alertmanager (Debian package prometheus-alertmanager) for development and
# tests, the notifier's counterpart.
#
#   scripts/alertmanager.sh start    start it (idempotent) and wait until /-/ready answers
#   scripts/alertmanager.sh stop     stop it by the PID in its pid file (idempotent)
#   scripts/alertmanager.sh status   exit 0 if ours answers /-/ready, 1 otherwise
#
# It listens on 127.0.0.1 only, with clustering off (--cluster.listen-address=): a single
# Alertmanager needs no gossip port, and the default 9094 of that port is ours below.
# Point the notifier at it with ALERTMANAGER_URL=http://127.0.0.1:$ALERTMANAGER_PORT.
#
# Environment (defaults in brackets):
#   ALERTMANAGER_PORT                  web/API port on 127.0.0.1 [9094; 9093, Alertmanager's own
#                                      default, is the local Kafka's controller port]
#   ALERTMANAGER_DIR                   state: alertmanager.pid, alertmanager.log, data/ (silences
#                                      and notification log) [<repo>/.alertmanager]
#   ALERTMANAGER_CONFIG                configuration file [<repo>/ops/alertmanager/alertmanager.yml]
#   ALERTMANAGER_BIN                   the binary [prometheus-alertmanager, else alertmanager]
#   ALERTMANAGER_START_TIMEOUT_SECONDS how long start waits for /-/ready [30]
#   ALERTMANAGER_STOP_TIMEOUT_SECONDS  how long stop waits after SIGTERM before SIGKILL [10]
#
# Alertmanager keeps alerts in memory only: a restart forgets them until their senders post
# them again (the notifier re-sends its open alerts on a timer and after every failed post).
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=scripts/server-lib.sh
source "$SCRIPT_DIR/server-lib.sh"
REPO_ROOT="$(cd -- "$SCRIPT_DIR/.." && pwd -P)"
readonly SCRIPT_DIR REPO_ROOT

readonly HOST="127.0.0.1"
ALERTMANAGER_PORT="${ALERTMANAGER_PORT:-9094}"
ALERTMANAGER_DIR="${ALERTMANAGER_DIR:-$REPO_ROOT/.alertmanager}"
ALERTMANAGER_CONFIG="${ALERTMANAGER_CONFIG:-$REPO_ROOT/ops/alertmanager/alertmanager.yml}"
ALERTMANAGER_START_TIMEOUT_SECONDS="${ALERTMANAGER_START_TIMEOUT_SECONDS:-30}"
ALERTMANAGER_STOP_TIMEOUT_SECONDS="${ALERTMANAGER_STOP_TIMEOUT_SECONDS:-10}"
if [[ -z "${ALERTMANAGER_BIN:-}" ]]; then
  if command -v prometheus-alertmanager >/dev/null 2>&1; then
    ALERTMANAGER_BIN="prometheus-alertmanager"
  else
    ALERTMANAGER_BIN="alertmanager"
  fi
fi
PID_FILE="$ALERTMANAGER_DIR/alertmanager.pid"
PORT_FILE="$ALERTMANAGER_DIR/alertmanager.port"
LOG_FILE="$ALERTMANAGER_DIR/alertmanager.log"
DATA_DIR="$ALERTMANAGER_DIR/data"

# Does an Alertmanager answer 200 on GET /-/ready at port $1? Plain HTTP/1.0 over /dev/tcp.
am_ready() {
  local status=""
  status="$(
    exec 2>/dev/null
    exec 3<>"/dev/tcp/$HOST/$1" || exit 1
    printf 'GET /-/ready HTTP/1.0\r\nHost: %s:%s\r\n\r\n' "$HOST" "$1" >&3
    timeout 5 head -n 1 <&3
  )" || return 1
  [[ "$status" == "HTTP/1."?" 200"* ]]
}

lock_dir() {
  mkdir -p "$ALERTMANAGER_DIR"
  if command -v flock >/dev/null 2>&1; then
    exec 8>"$ALERTMANAGER_DIR/.lock"
    flock 8
  fi
}

# The PID from the pid file if it is a live Alertmanager started with *our* data directory;
# never signal a process that is not the one we started (PID reuse after a crash or reboot).
our_pid() {
  local pid args
  [[ -f "$PID_FILE" ]] || return 1
  pid="$(tr -dc '0-9' <"$PID_FILE")"
  [[ -n "$pid" ]] || return 1
  args="$(ps -o args= -p "$pid" 2>/dev/null)" || return 1
  [[ "$args" == *alertmanager* && "$args" == *"--storage.path=$DATA_DIR"* ]] || return 1
  echo "$pid"
}

running_port() {
  local port=""
  [[ -f "$PORT_FILE" ]] && port="$(tr -dc '0-9' <"$PORT_FILE")"
  echo "${port:-$ALERTMANAGER_PORT}"
}

cmd_start() {
  require_port ALERTMANAGER_PORT "$ALERTMANAGER_PORT"
  require_seconds ALERTMANAGER_START_TIMEOUT_SECONDS "$ALERTMANAGER_START_TIMEOUT_SECONDS"
  require_seconds ALERTMANAGER_STOP_TIMEOUT_SECONDS "$ALERTMANAGER_STOP_TIMEOUT_SECONDS"
  command -v "$ALERTMANAGER_BIN" >/dev/null 2>&1 \
    || die "$ALERTMANAGER_BIN not found: install the Debian package prometheus-alertmanager (apt-get install --no-install-recommends prometheus-alertmanager) or set ALERTMANAGER_BIN"
  [[ -r "$ALERTMANAGER_CONFIG" ]] || die "ALERTMANAGER_CONFIG $ALERTMANAGER_CONFIG is not a readable file"
  lock_dir

  local pid port
  if pid="$(our_pid)"; then
    port="$(running_port)"
    echo "alertmanager already running on $HOST:$port (pid $pid)"
    if [[ "$port" != "$ALERTMANAGER_PORT" ]]; then
      echo "warning: it listens on $port, not ALERTMANAGER_PORT=$ALERTMANAGER_PORT; stop it first to change ports" >&2
    fi
    return 0
  fi
  if port_open "$ALERTMANAGER_PORT"; then
    if am_ready "$ALERTMANAGER_PORT"; then
      echo "alertmanager already running on $HOST:$ALERTMANAGER_PORT (not started from $ALERTMANAGER_DIR)"
      return 0
    fi
    die "port $ALERTMANAGER_PORT on $HOST is in use by something that is not a ready Alertmanager (set ALERTMANAGER_PORT)"
  fi
  rm -f -- "$PID_FILE" # stale: its process is gone or is not ours
  mkdir -p "$DATA_DIR"
  if [[ -f "$LOG_FILE" ]]; then
    mv -f -- "$LOG_FILE" "$LOG_FILE.prev"
  fi
  # setsid + nohup: it outlives this shell and ignores the terminal's Ctrl-C and hangup; in a
  # script the background child is no process-group leader, so $! is Alertmanager itself.
  nohup setsid "$ALERTMANAGER_BIN" \
    "--config.file=$ALERTMANAGER_CONFIG" \
    "--storage.path=$DATA_DIR" \
    "--web.listen-address=$HOST:$ALERTMANAGER_PORT" \
    "--cluster.listen-address=" \
    </dev/null >"$LOG_FILE" 2>&1 8>&- &
  pid=$!
  echo "$pid" >"$PID_FILE"
  echo "$ALERTMANAGER_PORT" >"$PORT_FILE"

  local waited=0
  until am_ready "$ALERTMANAGER_PORT"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f -- "$PID_FILE"
      print_log_tail
      die "alertmanager (pid $pid) exited during start-up (log: $LOG_FILE)"
    fi
    if ((waited >= ALERTMANAGER_START_TIMEOUT_SECONDS * 10)); then
      terminate_pid "$pid" alertmanager "$ALERTMANAGER_STOP_TIMEOUT_SECONDS"
      rm -f -- "$PID_FILE"
      print_log_tail
      die "alertmanager did not answer /-/ready on $HOST:$ALERTMANAGER_PORT within $ALERTMANAGER_START_TIMEOUT_SECONDS s; stopped it (log: $LOG_FILE)"
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  echo "alertmanager up on http://$HOST:$ALERTMANAGER_PORT (pid $pid, config $ALERTMANAGER_CONFIG, log $LOG_FILE)"
}

cmd_stop() {
  require_seconds ALERTMANAGER_STOP_TIMEOUT_SECONDS "$ALERTMANAGER_STOP_TIMEOUT_SECONDS"
  if [[ ! -d "$ALERTMANAGER_DIR" ]]; then
    echo "alertmanager not running"
    return 0
  fi
  lock_dir
  local pid
  if ! pid="$(our_pid)"; then
    rm -f -- "$PID_FILE"
    echo "alertmanager not running"
    return 0
  fi
  terminate_pid "$pid" alertmanager "$ALERTMANAGER_STOP_TIMEOUT_SECONDS"
  rm -f -- "$PID_FILE"
  echo "alertmanager stopped (pid $pid)"
}

cmd_status() {
  local pid port
  if pid="$(our_pid)"; then
    port="$(running_port)"
    if am_ready "$port"; then
      echo "alertmanager running on http://$HOST:$port (pid $pid, log $LOG_FILE)"
      return 0
    fi
    echo "alertmanager process $pid is alive but not ready on $HOST:$port (log $LOG_FILE)"
    return 1
  fi
  if port_open "$ALERTMANAGER_PORT" && am_ready "$ALERTMANAGER_PORT"; then
    echo "alertmanager running on http://$HOST:$ALERTMANAGER_PORT (not started from $ALERTMANAGER_DIR)"
    return 0
  fi
  echo "alertmanager not running"
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
