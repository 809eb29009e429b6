# shellcheck shell=bash
# What the scripts that run a local server (broker.sh, prometheus.sh, alertmanager.sh) share,
# sourced by each: one copy of the argument checks, of the stop by PID and of the replacement of
# a directory the script made (rpk.sh sources it for that too). Uses the sourcing script's $HOST
# (the address its server listens on).

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

# The file a script writes into every directory it makes and may later delete and make anew (a
# cache, generated certificates). Its directories are user-settable paths: without the marker
# a directory is the user's, and is never deleted.
readonly OWNED_MARKER=".sensor-anomaly-owned"

# mark_owned DIR WHAT: write the marker into DIR, a directory this script has just made.
mark_owned() {
  printf '%s\n' "made by scripts/$(basename -- "$0") ($2): it deletes and re-makes this directory" \
    >"$1/$OWNED_MARKER"
}

# owned_or_absent DIR [SIGN PATTERN...]: may DIR be deleted to make it anew? Yes if it does not
# exist, is an empty directory, or is a directory holding the marker. SIGN and PATTERNs describe
# what a script made before it wrote markers, so that existing caches keep working: a directory
# that holds the file SIGN, and nothing whose name matches none of the glob PATTERNs (SIGN
# among them), is taken as the script's too.
owned_or_absent() {
  local dir="$1" entry pattern matched
  shift
  [[ -e "$dir" || -L "$dir" ]] || return 0
  [[ -d "$dir" ]] || return 1
  [[ ! -f "$dir/$OWNED_MARKER" ]] || return 0
  local sign="${1:-}" patterns=("$@")
  for entry in "$dir"/* "$dir"/.[!.]* "$dir"/..?*; do
    [[ -e "$entry" || -L "$entry" ]] || continue # an unmatched glob
    [[ -n "$sign" && -f "$dir/$sign" ]] || return 1
    matched=1
    for pattern in "${patterns[@]}"; do
      # shellcheck disable=SC2053 # a glob pattern, on purpose
      if [[ "${entry##*/}" == $pattern ]]; then
        matched=0
        break
      fi
    done
    ((matched == 0)) || return 1
  done
  return 0
}

# require_owned DIR WHY [SIGN PATTERN...]: die in one line unless owned_or_absent DIR. WHY ends
# the line: what the deletion was for, and what to do instead ("to fetch the jars; set X to a new
# or empty directory").
require_owned() {
  local dir="$1" why="$2" script
  shift 2
  owned_or_absent "$dir" "$@" && return 0
  script="$(basename -- "$0")"
  [[ -d "$dir" ]] || die "$dir is not a directory, so $script will not delete it $why"
  die "$dir is not empty and $script did not make it (no $OWNED_MARKER file in it), so it will not delete it $why"
}

# replace_owned_dir NEW DIR WHY [SIGN PATTERN...]: put the directory NEW (made by this script,
# marked) at DIR, deleting what was there only if this script made it; else NEW is removed and
# require_owned's line ends the script.
replace_owned_dir() {
  local new="$1" dir="$2" why="$3"
  shift 3
  if ! owned_or_absent "$dir" "$@"; then
    rm -rf -- "$new"
    require_owned "$dir" "$why" "$@"
  fi
  if [[ -e "$dir" || -L "$dir" ]]; then
    rm -rf -- "$dir"
  fi
  mv -- "$new" "$dir"
}
