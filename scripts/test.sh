#!/usr/bin/env bash
# `make test`: lint, unit tests, and integration tests against the real local broker.
# Starts the broker if none answers, and stops it again only if it started it.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/.."

# Tests talk to the broker this script manages, unless KAFKA_BROKERS says otherwise.
export KAFKA_BROKERS="${KAFKA_BROKERS:-127.0.0.1:${KAFKA_PORT:-9092}}"

started=0
cleanup() {
  if [[ $started == 1 ]]; then
    scripts/broker.sh stop
  fi
}
trap cleanup EXIT

if ! scripts/broker.sh status >/dev/null 2>&1; then
  scripts/broker.sh start
  started=1
fi

.venv/bin/ruff check .
if command -v shellcheck >/dev/null 2>&1; then
  shellcheck scripts/*.sh entrypoint.sh
fi
# The broker is up, so a missing broker is a failure here, not a reason to skip.
REQUIRE_BROKER=1 .venv/bin/python -m pytest "$@"
