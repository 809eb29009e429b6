#!/usr/bin/env bash
# Container entrypoint, also usable from a checkout against the local broker:
# wait until a Kafka broker answers, then exec one role in place of this shell.
#
#   entrypoint.sh producer [flags...]      python -m producer [flags...]
#   entrypoint.sh dataflow [options...]    python -m bytewax.run dataflow.main:flow [options...]
#   entrypoint.sh notifier                 python -m notifier (anomalies topic -> Alertmanager)
#   entrypoint.sh init-topics              create the four topics (idempotent), then exit
#   entrypoint.sh init-recovery            initialise this process's recovery partitions where
#                                          none exist yet, then exit (a Kubernetes init container)
#   entrypoint.sh wait                     only wait for the broker
#
# Waiting first matters: `docker compose up` starts everything at once, and a dataflow that
# starts before the broker answers dies with a confusing librdkafka error instead of a clear one.
#
# Environment (defaults in brackets); the roles also read every variable in docs/configuration.md:
#   KAFKA_BROKERS                     bootstrap brokers to wait for [127.0.0.1:9092]
#   BROKER_WAIT_TIMEOUT_SECONDS       how long to wait before failing [60]
#   BYTEWAX_WORKERS                   dataflow: worker threads in this process, `-w` [1]
#   BYTEWAX_RECOVERY_DIRECTORY        dataflow: recovery directory, `-r` (unset: no recovery);
#                                     created and initialised when it holds no partitions yet
#   BYTEWAX_RECOVERY_PARTITIONS       dataflow: partitions of the recovery store [1]; one
#                                     process holds them all, a cluster's process N holds
#                                     partition N only (none if N >= the count)
#   BYTEWAX_PROCESS_ID, or BYTEWAX_POD_NAME with BYTEWAX_STATEFULSET_NAME
#                                     dataflow: this process's id in a cluster, as bytewax.run
#                                     reads it (the pod's ordinal: pod NAME-2 is process 2)
#   BYTEWAX_SNAPSHOT_INTERVAL         dataflow with recovery: seconds between snapshots, `-s` [10]
#   BYTEWAX_RECOVERY_BACKUP_INTERVAL  dataflow with recovery: seconds old snapshots are kept, `-b` [0]
#   PYTHON                            interpreter [<repo>/.venv/bin/python if present, else python3]
#
# Exit status: the role's own once it runs; 1 if no broker answered in time or a setting is
# bad (the message names the address or the variable); 2 for an unknown or missing role.
set -euo pipefail

APP_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
readonly APP_DIR
readonly ROLES="producer, dataflow, notifier, init-topics, init-recovery or wait"

if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$APP_DIR/.venv/bin/python" ]]; then
    PYTHON="$APP_DIR/.venv/bin/python"
  else
    PYTHON="python3"
  fi
fi
# Import the app from this directory without changing the working directory, so relative
# paths given by the caller (--log-sent out.jsonl, a recovery directory) mean what they say.
export PYTHONPATH="$APP_DIR${PYTHONPATH:+:$PYTHONPATH}"

die() {
  echo "entrypoint: error: $*" >&2
  exit 1
}

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
}

require_count() {
  local name="$1" value="$2"
  [[ "$value" =~ ^[1-9][0-9]*$ ]] || die "$name must be a whole number >= 1, got '$value'"
}

require_seconds() {
  local name="$1" value="$2"
  [[ "$value" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "$name must be a number of seconds >= 0, got '$value'"
}

# The broker wait (python -m dataflow.admin wait, also sensor-wait-for-broker) asks for real
# cluster metadata (an open port is not enough) and prints "error: no Kafka broker answered at
# ADDRESS within N s" when it gives up.
wait_for_broker() {
  local brokers="${KAFKA_BROKERS:-127.0.0.1:9092}" timeout="${BROKER_WAIT_TIMEOUT_SECONDS:-60}"
  require_seconds BROKER_WAIT_TIMEOUT_SECONDS "$timeout"
  echo "entrypoint: waiting up to $timeout s for a Kafka broker at $brokers" >&2
  local status=0
  "$PYTHON" -m dataflow.admin wait --brokers "$brokers" --timeout "$timeout" || status=$?
  case $status in
    0) ;;
    2) echo "entrypoint: bad setting (see above); not waiting" >&2; exit 2 ;;
    *) die "giving up: no Kafka broker at $brokers (KAFKA_BROKERS) within $timeout s (BROKER_WAIT_TIMEOUT_SECONDS)" ;;
  esac
}

# This process's id in a Bytewax cluster, read as bytewax.run reads it: BYTEWAX_PROCESS_ID, else
# the StatefulSet pod's ordinal (BYTEWAX_POD_NAME less "$BYTEWAX_STATEFULSET_NAME-"). Empty: one
# process, no cluster.
process_id() {
  local id="${BYTEWAX_PROCESS_ID:-}" pod="${BYTEWAX_POD_NAME:-}" set="${BYTEWAX_STATEFULSET_NAME:-}"
  if [[ -z "$id" && -n "$pod" && -n "$set" ]]; then
    id="${pod#"$set"-}"
    [[ "$id" != "$pod" ]] \
      || die "BYTEWAX_POD_NAME '$pod' is not a pod of BYTEWAX_STATEFULSET_NAME '$set' ($set-N)"
  fi
  [[ -z "$id" || "$id" =~ ^[0-9]+$ ]] || die "the process id must be a whole number >= 0, got '$id'"
  echo "$id"
}

# Bytewax refuses a recovery store without partitions, and crashes when asked to initialise
# one twice; so initialise exactly when none exists yet. The store is the union of the
# processes' directories: Bytewax wants every partition somewhere in the cluster, each in one
# place (a copy would be a second, diverging store). A cluster process N keeps partition N of
# the set (each partition file records its index and the count) and drops the others; a single
# process keeps them all.
init_recovery_dir() {
  local dir="$1" parts="$2" id tmp
  mkdir -p -- "$dir" || die "cannot create BYTEWAX_RECOVERY_DIRECTORY $dir"
  if compgen -G "$dir/part-*.sqlite3" >/dev/null; then
    return 0
  fi
  id="$(process_id)"
  if [[ -z "$id" ]]; then
    echo "entrypoint: initialising recovery directory $dir with $parts partition(s)" >&2
    "$PYTHON" -m bytewax.recovery "$dir" "$parts" || die "could not initialise recovery directory $dir"
    return 0
  fi
  if ((id >= parts)); then
    echo "entrypoint: process $id holds no recovery partition (BYTEWAX_RECOVERY_PARTITIONS=$parts: processes 0 to $((parts - 1)) hold one each)" >&2
    return 0
  fi
  echo "entrypoint: initialising recovery partition $id of $parts in $dir (process $id)" >&2
  tmp="$(mktemp -d "$dir/.init.XXXXXX")" || die "cannot write to BYTEWAX_RECOVERY_DIRECTORY $dir"
  if ! { "$PYTHON" -m bytewax.recovery "$tmp" "$parts" && mv -- "$tmp/part-$id.sqlite3" "$dir/"; }; then
    rm -rf -- "$tmp"
    die "could not initialise recovery partition $id in $dir"
  fi
  rm -rf -- "$tmp"
}

# The init container of a StatefulSet pod: this process's partitions, nothing else.
run_init_recovery() {
  (($# == 0)) || die "init-recovery takes no arguments (it reads BYTEWAX_RECOVERY_DIRECTORY and BYTEWAX_RECOVERY_PARTITIONS)"
  local recovery="${BYTEWAX_RECOVERY_DIRECTORY:-}" parts="${BYTEWAX_RECOVERY_PARTITIONS:-1}"
  [[ -n "$recovery" ]] || die "init-recovery needs BYTEWAX_RECOVERY_DIRECTORY"
  require_count BYTEWAX_RECOVERY_PARTITIONS "$parts"
  init_recovery_dir "$recovery" "$parts"
}

# Settings are checked before the wait, so a typo fails at once rather than after it.
run_dataflow() {
  local workers="${BYTEWAX_WORKERS:-1}" options=() recovery="${BYTEWAX_RECOVERY_DIRECTORY:-}"
  local parts="${BYTEWAX_RECOVERY_PARTITIONS:-1}"
  local snapshot="${BYTEWAX_SNAPSHOT_INTERVAL:-10}" backup="${BYTEWAX_RECOVERY_BACKUP_INTERVAL:-0}"
  require_count BYTEWAX_WORKERS "$workers"
  options+=(-w "$workers")
  if [[ -n "$recovery" ]]; then
    require_count BYTEWAX_RECOVERY_PARTITIONS "$parts"
    require_seconds BYTEWAX_SNAPSHOT_INTERVAL "$snapshot"
    require_seconds BYTEWAX_RECOVERY_BACKUP_INTERVAL "$backup"
    options+=(-r "$recovery" -s "$snapshot" -b "$backup")
  fi
  wait_for_broker
  if [[ -n "$recovery" ]]; then
    init_recovery_dir "$recovery" "$parts"
  fi
  echo "entrypoint: exec python -m bytewax.run dataflow.main:flow ${options[*]} $*" >&2
  exec "$PYTHON" -m bytewax.run dataflow.main:flow "${options[@]}" "$@"
}

# The flow's own topic creation (dataflow.admin.ensure_flow_topics, as the flow does when it
# starts): same variables, same partition count (TOPIC_PARTITIONS), and an existing topic is
# left as it is, so a re-run succeeds.
run_init_topics() {
  (($# == 0)) || die "init-topics takes no arguments (it reads the *_TOPIC variables and TOPIC_PARTITIONS)"
  wait_for_broker
  exec "$PYTHON" -m dataflow.admin init-topics
}

main() {
  if (($# == 0)); then
    usage >&2
    echo "entrypoint: error: no role given (expected $ROLES)" >&2
    exit 2
  fi
  local role="$1"
  shift
  case "$role" in
    producer)
      wait_for_broker
      exec "$PYTHON" -m producer "$@"
      ;;
    dataflow)
      run_dataflow "$@"
      ;;
    notifier)
      (($# == 0)) || die "notifier takes no arguments (it reads the variables of python -m notifier --help)"
      wait_for_broker
      exec "$PYTHON" -m notifier
      ;;
    init-topics)
      run_init_topics "$@"
      ;;
    init-recovery)
      run_init_recovery "$@"
      ;;
    wait)
      (($# == 0)) || die "wait takes no arguments"
      wait_for_broker
      ;;
    -h | --help | help)
      usage
      ;;
    *)
      echo "entrypoint: error: unknown role '$role' (expected $ROLES)" >&2
      exit 2
      ;;
  esac
}

main "$@"
