#!/usr/bin/env bash
# Local Prometheus (Debian package `prometheus`) for development and tests: scrapes the
# dataflow's and the notifier's /metrics and evaluates the alerting rules of ops/prometheus/rules/.
#
#   scripts/prometheus.sh start    write the config, start it (idempotent), wait until ready
#   scripts/prometheus.sh stop     stop it by the PID in its pid file (idempotent)
#   scripts/prometheus.sh status   exit 0 if the one started from PROMETHEUS_DIR is ready, else 1
#
# The config is ops/prometheus/prometheus.yml (the one docker-compose.yml mounts) with the
# targets, intervals and rule path below put in, written to $PROMETHEUS_DIR/prometheus.yml and
# checked with `promtool check config` before the start. It listens on 127.0.0.1 only. A
# system-wide Prometheus (the Debian package's service, port 9090) is neither used nor touched.
#
# Environment (defaults in brackets):
#   PROMETHEUS_PORT                   web UI and HTTP API on 127.0.0.1 [9490]
#   PROMETHEUS_DIR                    state: prometheus.yml, data/, prometheus.log, prometheus.pid
#                                     [<repo>/.prometheus]
#   PROMETHEUS_SCRAPE_TARGETS         the dataflow's /metrics, host:port[,host:port...] (one per
#                                     dataflow process; its BYTEWAX_DATAFLOW_API_PORT) [127.0.0.1:3030]
#   PROMETHEUS_NOTIFIER_TARGETS       the notifier's /metrics, host:port[,...] (its
#                                     NOTIFIER_METRICS_PORT) [127.0.0.1:9495]
#   PROMETHEUS_SCRAPE_INTERVAL        scrape interval, e.g. 15s, 1s, 500ms [15s]
#   PROMETHEUS_EVALUATION_INTERVAL    rule evaluation interval [PROMETHEUS_SCRAPE_INTERVAL]
#   PROMETHEUS_ALERTMANAGERS          Alertmanagers to send firing rules to, host:port[,...]
#                                     [unset: none]
#   PROMETHEUS_RETENTION              how long samples are kept in data/ [2d]
#   PROMETHEUS_START_TIMEOUT_SECONDS  how long start waits for /-/ready [60]
#   PROMETHEUS_STOP_TIMEOUT_SECONDS   how long stop waits after SIGTERM before SIGKILL [20]
#   PROMETHEUS                        the server binary [prometheus]
#   PROMTOOL                          the config checker [promtool]
#   PYTHON                            interpreter with PyYAML, writes the config
#                                     [<repo>/.venv/bin/python, else python3]
#
# A running one is not changed by start: stop it first to change the port, targets or
# intervals (start says so when they differ).
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=scripts/server-lib.sh
source "$SCRIPT_DIR/server-lib.sh"
REPO_ROOT="$(cd -- "$SCRIPT_DIR/.." && pwd -P)"
readonly SCRIPT_DIR REPO_ROOT

readonly HOST="127.0.0.1"
readonly BASE_CONFIG="$REPO_ROOT/ops/prometheus/prometheus.yml"
readonly JOB="sensor-dataflow"
readonly NOTIFIER_JOB="sensor-notifier"
PROMETHEUS_PORT="${PROMETHEUS_PORT:-9490}"
PROMETHEUS_DIR="${PROMETHEUS_DIR:-$REPO_ROOT/.prometheus}"
PROMETHEUS_SCRAPE_TARGETS="${PROMETHEUS_SCRAPE_TARGETS:-127.0.0.1:3030}"
PROMETHEUS_NOTIFIER_TARGETS="${PROMETHEUS_NOTIFIER_TARGETS:-127.0.0.1:9495}"
PROMETHEUS_SCRAPE_INTERVAL="${PROMETHEUS_SCRAPE_INTERVAL:-15s}"
PROMETHEUS_EVALUATION_INTERVAL="${PROMETHEUS_EVALUATION_INTERVAL:-$PROMETHEUS_SCRAPE_INTERVAL}"
PROMETHEUS_ALERTMANAGERS="${PROMETHEUS_ALERTMANAGERS:-}"
PROMETHEUS_RETENTION="${PROMETHEUS_RETENTION:-2d}"
PROMETHEUS_START_TIMEOUT_SECONDS="${PROMETHEUS_START_TIMEOUT_SECONDS:-60}"
PROMETHEUS_STOP_TIMEOUT_SECONDS="${PROMETHEUS_STOP_TIMEOUT_SECONDS:-20}"
PROMETHEUS="${PROMETHEUS:-prometheus}"
PROMTOOL="${PROMTOOL:-promtool}"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$REPO_ROOT/.venv/bin/python" ]]; then
    PYTHON="$REPO_ROOT/.venv/bin/python"
  else
    PYTHON="python3"
  fi
fi

CONFIG_FILE="$PROMETHEUS_DIR/prometheus.yml"
DATA_DIR="$PROMETHEUS_DIR/data"
PID_FILE="$PROMETHEUS_DIR/prometheus.pid"
LOG_FILE="$PROMETHEUS_DIR/prometheus.log"
# What the running server was started with: port, targets (the dataflow's, the notifier's),
# intervals, Alertmanagers (one a line).
STARTED_FILE="$PROMETHEUS_DIR/started-with"
readonly DURATION_RE='^[0-9]+(ms|s|m|h|d)$'
readonly ADDRESS_RE='^[A-Za-z0-9._-]+:[0-9]{1,5}$'

require_duration() {
  local name="$1" value="$2"
  [[ "$value" =~ $DURATION_RE ]] || die "$name must be a duration like 15s, 500ms or 1m, got '$value'"
}

# host:port[,host:port...], each checked.
require_addresses() {
  local name="$1" value="$2" address
  local -a addresses
  IFS=',' read -r -a addresses <<<"$value"
  ((${#addresses[@]} > 0)) || die "$name must list at least one host:port"
  for address in "${addresses[@]}"; do
    [[ "$address" =~ $ADDRESS_RE ]] || die "$name: '$address' is not host:port"
  done
}

# Does Prometheus on port $1 answer GET /-/ready with 200 within 5 s?
ready() {
  local status
  status="$(
    exec 2>/dev/null
    exec 3<>"/dev/tcp/$HOST/$1" || exit 1
    printf 'GET /-/ready HTTP/1.0\r\nHost: %s:%s\r\n\r\n' "$HOST" "$1" >&3
    timeout 5 head -n 1 <&3
  )" || return 1
  [[ "$status" =~ ^HTTP/[0-9.]+\ 200 ]]
}

# The PID from the pid file if it is a live prometheus started with *our* config file; return 1
# otherwise. Guards against PID reuse: never signal a process that is not the one we started.
our_pid() {
  local pid args
  [[ -f "$PID_FILE" ]] || return 1
  pid="$(tr -dc '0-9' <"$PID_FILE")"
  [[ -n "$pid" ]] || return 1
  args="$(ps -o args= -p "$pid" 2>/dev/null)" || return 1
  [[ "$args" == *prometheus* && "$args" == *"--config.file=$CONFIG_FILE"* ]] || return 1
  echo "$pid"
}

# The port the server started from PROMETHEUS_DIR listens on (first line of STARTED_FILE).
running_port() {
  local port
  port="$(sed -n 1p "$STARTED_FILE" 2>/dev/null || true)"
  echo "${port:-$PROMETHEUS_PORT}"
}

started_with() {
  printf '%s\n%s %s\n%s %s\n%s\n' "$PROMETHEUS_PORT" "$PROMETHEUS_SCRAPE_TARGETS" "$PROMETHEUS_NOTIFIER_TARGETS" \
    "$PROMETHEUS_SCRAPE_INTERVAL" "$PROMETHEUS_EVALUATION_INTERVAL" "${PROMETHEUS_ALERTMANAGERS:-no alertmanager}"
}

# Exclusive lock on PROMETHEUS_DIR so two concurrent start/stop calls don't race. fd 8 is
# closed for the server itself, so the lock ends with this script.
lock_dir() {
  mkdir -p "$PROMETHEUS_DIR"
  if command -v flock >/dev/null 2>&1; then
    exec 8>"$PROMETHEUS_DIR/.lock"
    flock 8
  fi
}

check_tools() {
  command -v "$PROMETHEUS" >/dev/null 2>&1 \
    || die "$PROMETHEUS not found: install the Debian package (apt-get install --no-install-recommends prometheus) or set PROMETHEUS"
  command -v "$PROMTOOL" >/dev/null 2>&1 \
    || die "$PROMTOOL not found (it comes with the Debian package prometheus); or set PROMTOOL"
  "$PYTHON" -c 'import yaml' 2>/dev/null \
    || die "$PYTHON cannot import yaml (PyYAML, in requirements.txt); create the venv first or set PYTHON"
}

# ops/prometheus/prometheus.yml with this run's intervals, targets, Alertmanagers and the rule
# files' absolute path, to $CONFIG_FILE; then promtool checks it (and the rules it loads).
write_config() {
  SOURCE="$BASE_CONFIG" DEST="$CONFIG_FILE" JOB_NAME="$JOB" NOTIFIER_JOB_NAME="$NOTIFIER_JOB" \
    TARGETS="$PROMETHEUS_SCRAPE_TARGETS" NOTIFIER_TARGETS="$PROMETHEUS_NOTIFIER_TARGETS" \
    ALERTMANAGERS="$PROMETHEUS_ALERTMANAGERS" \
    SCRAPE_INTERVAL="$PROMETHEUS_SCRAPE_INTERVAL" EVALUATION_INTERVAL="$PROMETHEUS_EVALUATION_INTERVAL" \
    "$PYTHON" - <<'EOF'
import os
from pathlib import Path

import yaml

env = os.environ
base = Path(env["SOURCE"])
config = yaml.safe_load(base.read_text())
config["global"]["scrape_interval"] = env["SCRAPE_INTERVAL"]
config["global"]["evaluation_interval"] = env["EVALUATION_INTERVAL"]
config["rule_files"] = [str(base.parent / pattern) for pattern in config["rule_files"]]
jobs = {env["JOB_NAME"]: env["TARGETS"], env["NOTIFIER_JOB_NAME"]: env["NOTIFIER_TARGETS"]}
for name, targets in jobs.items():
    [job] = [job for job in config["scrape_configs"] if job["job_name"] == name]
    job["static_configs"] = [{"targets": targets.split(",")}]
if env["ALERTMANAGERS"]:
    config["alerting"] = {"alertmanagers": [
        {"static_configs": [{"targets": env["ALERTMANAGERS"].split(",")}]}]}
else:
    config.pop("alerting", None)
header = (f"# Written by scripts/prometheus.sh from {base}; edit that file, not this one.\n")
Path(env["DEST"]).write_text(header + yaml.safe_dump(config, sort_keys=False))
EOF
  local out
  if ! out="$("$PROMTOOL" check config "$CONFIG_FILE" 2>&1)"; then
    echo "$out" >&2
    die "promtool rejects $CONFIG_FILE (see above)"
  fi
}

cmd_start() {
  require_port PROMETHEUS_PORT "$PROMETHEUS_PORT"
  require_addresses PROMETHEUS_SCRAPE_TARGETS "$PROMETHEUS_SCRAPE_TARGETS"
  require_addresses PROMETHEUS_NOTIFIER_TARGETS "$PROMETHEUS_NOTIFIER_TARGETS"
  if [[ -n "$PROMETHEUS_ALERTMANAGERS" ]]; then
    require_addresses PROMETHEUS_ALERTMANAGERS "$PROMETHEUS_ALERTMANAGERS"
  fi
  require_duration PROMETHEUS_SCRAPE_INTERVAL "$PROMETHEUS_SCRAPE_INTERVAL"
  require_duration PROMETHEUS_EVALUATION_INTERVAL "$PROMETHEUS_EVALUATION_INTERVAL"
  require_duration PROMETHEUS_RETENTION "$PROMETHEUS_RETENTION"
  require_seconds PROMETHEUS_START_TIMEOUT_SECONDS "$PROMETHEUS_START_TIMEOUT_SECONDS"
  require_seconds PROMETHEUS_STOP_TIMEOUT_SECONDS "$PROMETHEUS_STOP_TIMEOUT_SECONDS"
  check_tools
  lock_dir

  local pid
  if pid="$(our_pid)"; then
    echo "prometheus already running on http://$HOST:$(running_port) (pid $pid)"
    if [[ "$(cat -- "$STARTED_FILE" 2>/dev/null)" != "$(started_with)" ]]; then
      echo "warning: it was started with other settings (port, targets, intervals or Alertmanagers:" \
        "$STARTED_FILE); stop it first to change them" >&2
    fi
    return 0
  fi
  if port_open "$PROMETHEUS_PORT"; then
    die "port $PROMETHEUS_PORT on $HOST is already in use (set PROMETHEUS_PORT)"
  fi
  rm -f -- "$PID_FILE" # stale: its process is gone or is not ours

  write_config
  mkdir -p "$DATA_DIR"
  if [[ -f "$LOG_FILE" ]]; then
    mv -f -- "$LOG_FILE" "$LOG_FILE.prev"
  fi
  # setsid + nohup: the server outlives this shell and ignores the terminal's Ctrl-C/hangup.
  # In a script the background child is not a process-group leader, so setsid execs in place
  # and $! is the prometheus PID itself. fd 8 (our lock) is closed.
  nohup setsid "$PROMETHEUS" \
    --config.file="$CONFIG_FILE" \
    --storage.tsdb.path="$DATA_DIR" \
    --storage.tsdb.retention.time="$PROMETHEUS_RETENTION" \
    --web.listen-address="$HOST:$PROMETHEUS_PORT" \
    </dev/null >"$LOG_FILE" 2>&1 8>&- &
  pid=$!
  echo "$pid" >"$PID_FILE"
  started_with >"$STARTED_FILE"

  local waited=0
  until ready "$PROMETHEUS_PORT"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f -- "$PID_FILE"
      print_log_tail
      die "prometheus (pid $pid) exited during start-up (log: $LOG_FILE)"
    fi
    if ((waited >= PROMETHEUS_START_TIMEOUT_SECONDS * 5)); then
      terminate_pid "$pid" prometheus "$PROMETHEUS_STOP_TIMEOUT_SECONDS"
      rm -f -- "$PID_FILE"
      print_log_tail
      die "prometheus was not ready on $HOST:$PROMETHEUS_PORT within $PROMETHEUS_START_TIMEOUT_SECONDS s; stopped it (log: $LOG_FILE)"
    fi
    sleep 0.2
    waited=$((waited + 1))
  done
  echo "prometheus up on http://$HOST:$PROMETHEUS_PORT (pid $pid), scraping $PROMETHEUS_SCRAPE_TARGETS and $PROMETHEUS_NOTIFIER_TARGETS" \
    "every $PROMETHEUS_SCRAPE_INTERVAL (config $CONFIG_FILE, log $LOG_FILE)"
}

cmd_stop() {
  require_seconds PROMETHEUS_STOP_TIMEOUT_SECONDS "$PROMETHEUS_STOP_TIMEOUT_SECONDS"
  if [[ ! -d "$PROMETHEUS_DIR" ]]; then
    echo "prometheus not running"
    return 0
  fi
  lock_dir
  local pid
  if ! pid="$(our_pid)"; then
    rm -f -- "$PID_FILE"
    echo "prometheus not running"
    return 0
  fi
  terminate_pid "$pid" prometheus "$PROMETHEUS_STOP_TIMEOUT_SECONDS"
  rm -f -- "$PID_FILE"
  echo "prometheus stopped (pid $pid)"
}

cmd_status() {
  local pid port
  if pid="$(our_pid)"; then
    port="$(running_port)"
    if ready "$port"; then
      echo "prometheus running on http://$HOST:$port (pid $pid, config $CONFIG_FILE, log $LOG_FILE)"
      return 0
    fi
    echo "prometheus process $pid is alive but not ready on $HOST:$port (log $LOG_FILE)"
    return 1
  fi
  echo "prometheus not running (from $PROMETHEUS_DIR)"
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
