# shellcheck shell=bash
# What the scripts that run a local server (broker.sh, prometheus.sh, alertmanager.sh) share,
# sourced by each: one copy of the argument checks and of the stop by PID. Uses the sourcing
# script's $HOST (the address its server listens on).

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

# The end of the server's log ($LOG_FILE), on a failed start. (broker.sh keeps its own, which
# masks passwords.)
print_log_tail() {
  if [[ -f "$LOG_FILE" ]]; then
    echo "---- last 20 lines of $LOG_FILE ----" >&2
    tail -n 20 -- "$LOG_FILE" >&2
    echo "----" >&2
  fi
}

# terminate_pid PID NAME TIMEOUT_S: SIGTERM, wait up to TIMEOUT_S, then SIGKILL. Only ever by
# PID, so a server this script did not start is never touched.
terminate_pid() {
  local pid="$1" name="$2" timeout_s="$3" waited=0
  kill -TERM "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null; do
    if ((waited >= timeout_s * 10)); then
      echo "$name (pid $pid) still running after ${timeout_s} s; sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
      break
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
}
