#!/usr/bin/env bash
# `make test`: lint (scripts/lint.sh: ruff, mypy, shellcheck), unit tests, and integration tests
# against the real local broker.
# Starts the broker if none answers, and stops it again only if it started it.
#
# The programs some checks run (shellcheck, kcat, openssl, prometheus with promtool,
# prometheus-alertmanager, wget) are installed first if missing, when that is possible (root with
# apt-get); otherwise it stops and says how to install them. A missing
# tool makes its tests fail, not skip (REQUIRE_TOOLS=1, tests/tools.py), so a green run never
# hides a check. REQUIRE_TOOLS=0 installs nothing, and those checks skip with the reason in
# pytest's summary.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/.."

REQUIRE_TOOLS="${REQUIRE_TOOLS:-1}"
export REQUIRE_TOOLS
# The suite runs the shard as built by `make compiled` (the Makefile builds it first), so a
# failed or missing build fails the run instead of testing the source alone.
export DATAFLOW_COMPILED="${DATAFLOW_COMPILED:-require}"
# Programs the tests run; each is also the name of its Debian package (`prometheus` brings
# `promtool` too).
readonly TOOLS=(shellcheck kcat openssl prometheus prometheus-alertmanager wget)
# Debian's policy layer: exit 101 = "do not start services". See no_service_starts.
readonly POLICY_RC=/usr/sbin/policy-rc.d

# The prometheus packages' install scripts start system services where a service manager runs:
# Prometheus on :9090 and Alertmanager on :9093, the local broker's controller port. The tests
# run their own on other ports, so none is wanted: while apt-get installs, a policy-rc.d that
# says no (unless the machine has one already, as container images do) keeps them stopped.
added_policy=0
no_service_starts() {
  [[ ! -e "$POLICY_RC" ]] || return 0
  printf '#!/bin/sh\n# Added by scripts/test.sh while it installs packages; removed after.\nexit 101\n' \
    >"$POLICY_RC"
  chmod 755 "$POLICY_RC"
  added_policy=1
  trap allow_service_starts EXIT
}

allow_service_starts() {
  if ((added_policy == 1)); then
    rm -f -- "$POLICY_RC"
    added_policy=0
  fi
}

ensure_tools() {
  local missing=() tool
  for tool in "${TOOLS[@]}"; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  ((${#missing[@]} > 0)) || return 0
  if [[ "$REQUIRE_TOOLS" != 1 ]]; then
    echo "warning: ${missing[*]} not installed; REQUIRE_TOOLS=$REQUIRE_TOOLS, so their checks are skipped" >&2
    return 0
  fi
  if ((EUID == 0)) && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${missing[*]} (the tests run them) with apt-get"
    # One update, for a fresh machine whose package lists are empty or old. Waits for another
    # apt-get to finish rather than failing at once on its lock.
    local apt=(apt-get -qq -o DPkg::Lock::Timeout=300) status=0
    "${apt[@]}" update || echo "warning: apt-get update failed; trying the current lists" >&2
    no_service_starts
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y --no-install-recommends \
      "${missing[@]}" >/dev/null || status=$?
    allow_service_starts
    if ((status != 0)); then
      echo "error: apt-get could not install ${missing[*]} (see above)" >&2
      exit 1
    fi
    return 0
  fi
  echo "error: not installed, and the tests run them: ${missing[*]}. Install them, e.g." >&2
  echo "  Debian/Ubuntu:  sudo apt-get install --no-install-recommends ${missing[*]}" >&2
  echo "  macOS:          brew install ${missing[*]/prometheus-alertmanager/alertmanager}" >&2
  echo "or run REQUIRE_TOOLS=0 make test to skip the checks that need them." >&2
  exit 1
}

ensure_tools

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

# ruff, mypy and shellcheck: the same checks as `make lint`.
scripts/lint.sh
# The broker is up, so a missing broker is a failure here, not a reason to skip. -ra: the
# summary lists every skip with its reason (and failures, errors, xfails); a later -r would
# replace it, so do not pass -rs alone.
REQUIRE_BROKER=1 .venv/bin/python -m pytest -ra "$@"
