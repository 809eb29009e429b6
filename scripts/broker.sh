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
#   KAFKA_JARS_DIR                jar cache [${XDG_CACHE_HOME:-$HOME/.cache}/sensor-anomaly/kafka-4.1.1];
#                                 a new or empty directory: it is deleted and fetched again when
#                                 the pom changes, so a non-empty one broker.sh did not make is
#                                 refused
#   KAFKA_HEAP_OPTS               JVM heap flags [-Xms256m -Xmx1g]
#   BROKER_START_TIMEOUT_SECONDS  how long start waits for the broker to answer [90]
#   BROKER_STOP_TIMEOUT_SECONDS   how long stop waits after SIGTERM before SIGKILL [20]
#   PYTHON                        interpreter with confluent_kafka [<repo>/.venv/bin/python, else python3]
#   JAVA_HOME                     if set, $JAVA_HOME/bin/java is used instead of java on PATH
#   KAFKA_SASL_PORT               opt-in SASL_PLAINTEXT listener on 127.0.0.1, beside the PLAINTEXT
#                                 one (which stays the inter-broker listener) [unset: none]
#   KAFKA_SASL_USERS              its users, "name:password,name2:password2" (required with
#                                 KAFKA_SASL_PORT or KAFKA_SASL_SSL_PORT); each may log in with
#                                 PLAIN, SCRAM-SHA-256 and
#                                 SCRAM-SHA-512. Names: letters, digits, . _ -; passwords: letters,
#                                 digits and . _ ~ + / @ ! # % ^ & * ( ) ? : -
#   KAFKA_SSL_PORT                opt-in SSL (TLS) listener on 127.0.0.1: the broker proves who it
#                                 is, clients need no certificate [unset: none]
#   KAFKA_MTLS_PORT               opt-in mutual-TLS listener on 127.0.0.1 (ssl.client.auth=
#                                 required): a client must also present a certificate signed by
#                                 the same CA [unset: none]
#   KAFKA_SASL_SSL_PORT           opt-in SASL_SSL listener on 127.0.0.1: TLS as on KAFKA_SSL_PORT,
#                                 then a SASL login as on KAFKA_SASL_PORT, by the users of
#                                 KAFKA_SASL_USERS [unset: none]
#   TLS_CERT_DAYS                 validity of the certificates made for them, in days [365]
#
# TLS: the first start with KAFKA_SSL_PORT, KAFKA_MTLS_PORT or KAFKA_SASL_SSL_PORT makes, with openssl, a private CA
# and two certificates signed by it, in $BROKER_DIR/tls (mode 700, keys mode 600; the default
# .broker/ is gitignored): the broker's (SAN IP:127.0.0.1 and DNS:localhost, so clients verify
# the host name) and one client certificate (CN=sensor-anomaly-client). Clients use
#   KAFKA_SECURITY_PROTOCOL=SSL KAFKA_SSL_CA_LOCATION=$BROKER_DIR/tls/ca.pem
# and, on the mutual-TLS port, also
#   KAFKA_SSL_CERT_LOCATION=$BROKER_DIR/tls/client.pem
#   KAFKA_SSL_KEY_LOCATION=$BROKER_DIR/tls/client.key
# They are kept across restarts (the CA file clients hold stays valid) and made anew, all of
# them, when one is missing or the broker's expires within a day; remove $BROKER_DIR/tls to
# force it. The broker reads them as PEM (ssl.keystore.type=PEM), so no keytool and no store
# passwords are needed.
#
# SASL: PLAIN reads the users from server.properties, rewritten on every start. SCRAM
# credentials live in the KRaft metadata log and are written when the data dir is formatted
# (first start, KIP-900 `--add-scram`); if KAFKA_SASL_USERS changes later, start warns, and
# removing the data dir re-creates them. Passwords are never printed: server.properties is
# mode 600, and the format command gets them through a mode-600 java @argfile (not argv, so
# `ps` does not show them) that is deleted right after.
set -euo pipefail

readonly KAFKA_VERSION="4.1.1"

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=scripts/server-lib.sh
source "$SCRIPT_DIR/server-lib.sh"
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
KAFKA_SASL_PORT="${KAFKA_SASL_PORT:-}"
KAFKA_SASL_USERS="${KAFKA_SASL_USERS:-}"
KAFKA_SSL_PORT="${KAFKA_SSL_PORT:-}"
KAFKA_MTLS_PORT="${KAFKA_MTLS_PORT:-}"
KAFKA_SASL_SSL_PORT="${KAFKA_SASL_SSL_PORT:-}"
TLS_CERT_DAYS="${TLS_CERT_DAYS:-365}"
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
# The broker wait (dataflow/admin.py), imported from this checkout whether or not it is installed.
readonly WAIT_FOR_BROKER=(-m dataflow.admin wait)
export PYTHONPATH="$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}"
readonly JARS_MARKER_NAME=".complete"
PID_FILE="$BROKER_DIR/kafka.pid"
LOG_FILE="$BROKER_DIR/kafka.log"
PROPS_FILE="$BROKER_DIR/server.properties"
FORMAT_LOG="$BROKER_DIR/format.log"
# sha256 of (cluster id, KAFKA_SASL_USERS) the data dir's SCRAM credentials were made from.
SCRAM_MARKER="$BROKER_DIR/scram-users.sha256"
TLS_DIR="$BROKER_DIR/tls"
ADDRESS="$HOST:$KAFKA_PORT"
readonly SASL_MECHANISMS="PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"
readonly SASL_NAME_RE='^[A-Za-z0-9._-]+$'
# No quotes, backslashes, commas, brackets, '=' or whitespace: the password goes unescaped
# into a JAAS string, a properties file, a java @argfile and StorageTool's [name=..,password=..].
readonly SASL_PASSWORD_RE='^[A-Za-z0-9._~+/@!#%^&*()?:-]+$'
# The client variables of dataflow/security.py. broker.sh's own metadata checks run without
# them, so a shell set up for a secured cluster does not break `start` and `status`.
readonly CLIENT_SECURITY_VARS=(KAFKA_SECURITY_PROTOCOL KAFKA_SASL_MECHANISM KAFKA_SASL_USERNAME
  KAFKA_SASL_PASSWORD KAFKA_SSL_CA_LOCATION KAFKA_SSL_CERT_LOCATION KAFKA_SSL_KEY_LOCATION
  KAFKA_SSL_KEY_PASSWORD)
SASL_NAMES=()
SASL_PASSWORDS=()

# Users, SCRAM credentials and JAAS settings are needed: a SASL listener, with or without TLS.
sasl_enabled() {
  [[ -n "$KAFKA_SASL_PORT" || -n "$KAFKA_SASL_SSL_PORT" ]]
}

tls_enabled() {
  [[ -n "$KAFKA_SSL_PORT" || -n "$KAFKA_MTLS_PORT" || -n "$KAFKA_SASL_SSL_PORT" ]]
}

# Parse KAFKA_SASL_USERS into SASL_NAMES / SASL_PASSWORDS. Pure bash (no here-string, pipe or
# argv), and no message ever shows a password.
parse_sasl_users() {
  local rest="$KAFKA_SASL_USERS," entry name password seen
  SASL_NAMES=()
  SASL_PASSWORDS=()
  while [[ -n "$rest" ]]; do
    entry="${rest%%,*}"
    rest="${rest#*,}"
    entry="${entry#"${entry%%[![:space:]]*}"}" # trim leading blanks
    [[ -n "$entry" ]] || continue
    [[ "$entry" == *:* ]] || die "KAFKA_SASL_USERS: entry $((${#SASL_NAMES[@]} + 1)) is not name:password"
    name="${entry%%:*}"
    password="${entry#*:}"
    [[ "$name" =~ $SASL_NAME_RE ]] \
      || die "KAFKA_SASL_USERS: user name '$name' may only contain letters, digits, '.', '_' and '-'"
    [[ -n "$password" ]] || die "KAFKA_SASL_USERS: user '$name' has an empty password"
    [[ "$password" =~ $SASL_PASSWORD_RE ]] \
      || die "KAFKA_SASL_USERS: the password of user '$name' (not shown) may only contain letters, digits and . _ ~ + / @ ! # % ^ & * ( ) ? : -"
    for seen in "${SASL_NAMES[@]}"; do
      [[ "$seen" != "$name" ]] || die "KAFKA_SASL_USERS: user '$name' is given twice"
    done
    SASL_NAMES+=("$name")
    SASL_PASSWORDS+=("$password")
  done
  ((${#SASL_NAMES[@]} > 0)) || die "KAFKA_SASL_USERS must name at least one name:password when KAFKA_SASL_PORT or KAFKA_SASL_SSL_PORT is set"
}

# stdin -> stdout with every SASL password replaced by ***: for the Kafka tools' output, whose
# error messages may quote their arguments.
mask_passwords() {
  local text password
  text="$(cat)"
  for password in "${SASL_PASSWORDS[@]}"; do
    text="${text//"$password"/***}"
  done
  printf '%s\n' "$text"
}

# Does a Kafka broker answer a metadata request on the client port within $1 seconds? The
# client security variables are removed: this is the PLAINTEXT port.
broker_answers() {
  (
    unset "${CLIENT_SECURITY_VARS[@]}"
    exec "$PYTHON" "${WAIT_FOR_BROKER[@]}" --brokers "$ADDRESS" --timeout "$1" 2>/dev/null
  )
}

# Does the SASL listener on port $2 let the first user in with PLAIN within $1 seconds? With
# $3 = tls, it is the SASL_SSL one, checked against our CA. The password is passed in the
# environment of a subshell, never on a command line.
sasl_answers() {
  (
    unset "${CLIENT_SECURITY_VARS[@]}"
    export KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT KAFKA_SASL_MECHANISM=PLAIN
    if [[ "${3:-}" == tls ]]; then
      export KAFKA_SECURITY_PROTOCOL=SASL_SSL KAFKA_SSL_CA_LOCATION="$TLS_DIR/ca.pem"
    fi
    export KAFKA_SASL_USERNAME="${SASL_NAMES[0]}" KAFKA_SASL_PASSWORD="${SASL_PASSWORDS[0]}"
    exec "$PYTHON" "${WAIT_FOR_BROKER[@]}" --brokers "$HOST:$2" --timeout "$1"
  )
}

# Does the TLS listener on port $1 answer a client that verifies it with our CA within $2
# seconds? With $3 = mutual, the client also presents the client certificate. (No secret in
# these variables, so env's command line may show them.)
tls_answers() {
  local settings=(KAFKA_SECURITY_PROTOCOL=SSL "KAFKA_SSL_CA_LOCATION=$TLS_DIR/ca.pem")
  if [[ "${3:-}" == mutual ]]; then
    settings+=("KAFKA_SSL_CERT_LOCATION=$TLS_DIR/client.pem" "KAFKA_SSL_KEY_LOCATION=$TLS_DIR/client.key")
  fi
  (
    unset "${CLIENT_SECURITY_VARS[@]}"
    exec env "${settings[@]}" "$PYTHON" "${WAIT_FOR_BROKER[@]}" --brokers "$HOST:$1" --timeout "$2"
  )
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

# SASL port of the broker started from BROKER_DIR; empty if it has no SASL listener.
running_sasl_port() {
  sed -n 's|^advertised\.listeners=.*SASL_PLAINTEXT://[^:,]*:\([0-9]*\).*|\1|p' "$PROPS_FILE" 2>/dev/null || true
}

# TLS listeners of the broker started from BROKER_DIR, e.g. "SSL 127.0.0.1:9095, mutual TLS
# 127.0.0.1:9096, SASL_SSL 127.0.0.1:9097"; empty if it has none. For start's and status's
# messages.
running_tls_listeners() {
  local listeners ssl mtls sasl_ssl out=""
  listeners="$(sed -n 's|^advertised\.listeners=||p' "$PROPS_FILE" 2>/dev/null || true)"
  # SSL:// at the start or after a comma: not the end of SASL_SSL://.
  ssl="$(sed -n 's|^\(.*,\)\{0,1\}SSL://\([^,]*\).*|\2|p' <<<"$listeners")"
  mtls="$(sed -n 's|.*MTLS://\([^,]*\).*|\1|p' <<<"$listeners")"
  sasl_ssl="$(sed -n 's|.*SASL_SSL://\([^,]*\).*|\1|p' <<<"$listeners")"
  [[ -z "$ssl" ]] || out="SSL $ssl"
  [[ -z "$mtls" ]] || out+="${out:+, }mutual TLS $mtls"
  [[ -z "$sasl_ssl" ]] || out+="${out:+, }SASL_SSL $sasl_ssl"
  echo "$out"
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
    || die "$PYTHON cannot import confluent_kafka (needed by the broker wait, dataflow/admin.py); create the venv first or set PYTHON"
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

# What broker.sh put in KAFKA_JARS_DIR before it wrote the ownership marker (server-lib.sh's
# owned_or_absent): the pom's hash in .complete, and jars.
readonly JARS_LEGACY=("$JARS_MARKER_NAME" "*.jar")
readonly JARS_WHY="to fetch the Kafka jars into it; set KAFKA_JARS_DIR to a new or empty directory"

# Resolve the broker classpath with Maven into KAFKA_JARS_DIR, once. The marker holds
# the pom's hash, so editing the pom refreshes the cache. Copies go to a temporary
# directory renamed into place, so an interrupted download never looks complete. The old
# cache is deleted only if broker.sh made it: KAFKA_JARS_DIR may name any directory.
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
  require_owned "$KAFKA_JARS_DIR" "$JARS_WHY" "${JARS_LEGACY[@]}"
  echo "fetching Kafka $KAFKA_VERSION jars with Maven into $KAFKA_JARS_DIR (first run only)..."
  tmp="$(mktemp -d "$KAFKA_JARS_DIR.tmp.XXXXXX")"
  mark_owned "$tmp" "Kafka $KAFKA_VERSION jars, fetched again when scripts/kafka/pom.xml changes"
  # Debian's Maven 3.8 prints stray ANSI resets even with -B -q; strip them (pipefail
  # keeps mvn's own exit status).
  if ! mvn -B -q -f "$POM" dependency:copy-dependencies \
    -DoutputDirectory="$tmp" -DincludeScope=runtime 2>&1 \
    | sed -e 's/\x1b\[[0-9;]*m//g' -e '/^[[:space:]]*$/d' >&2; then
    rm -rf -- "$tmp"
    die "Maven could not fetch the Kafka jars (see its output above)"
  fi
  sha256sum "$POM" | cut -d' ' -f1 >"$tmp/$JARS_MARKER_NAME"
  replace_owned_dir "$tmp" "$KAFKA_JARS_DIR" "$JARS_WHY" "${JARS_LEGACY[@]}"
  if command -v flock >/dev/null 2>&1; then
    exec 9>&-
  fi
  echo "fetched $(find "$KAFKA_JARS_DIR" -name '*.jar' | wc -l) jars"
}

readonly TLS_FILES=(ca.pem ca.key broker.pem broker.key broker-keystore.pem client.pem client.key)
# What broker.sh put in TLS_DIR before it wrote the ownership marker: those files.
readonly TLS_LEGACY=(broker-keystore.pem "${TLS_FILES[@]}")
readonly TLS_WHY="to make the TLS certificates in it; move it away, or set BROKER_DIR to another directory"

# Are the TLS files all there, and is the broker's certificate good for at least another day?
tls_files_usable() {
  local name
  for name in "${TLS_FILES[@]}"; do
    [[ -s "$TLS_DIR/$name" ]] || return 1
  done
  openssl x509 -noout -checkend 86400 -in "$TLS_DIR/broker.pem" >/dev/null 2>&1
}

# A private CA, the broker's certificate and one client certificate, made with openssl in a
# temporary directory renamed into place (an interrupted run never leaves half a set). EC P-256
# keys, unencrypted PKCS#8: Kafka's PEM keystore, librdkafka and Python's ssl all read them.
make_tls_files() {
  command -v openssl >/dev/null 2>&1 \
    || die "openssl not found; it makes the TLS listener's certificates (Debian package openssl)"
  local tmp out status
  require_owned "$TLS_DIR" "$TLS_WHY" "${TLS_LEGACY[@]}"
  tmp="$(mktemp -d "$BROKER_DIR/tls.tmp.XXXXXX")"
  # The steps' output is shown only if one fails. The subshell stops at the first failure: not
  # in an `if` or `||` (where bash ignores set -e), so errexit is switched off around it instead.
  set +e
  out="$(
    (
      set -e
      cd -- "$tmp"
      umask 077
      key=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
      # A new name for each CA: a client still trusting an older one then reads "unable to get
      # local issuer certificate", not a signature failure under a name it knows.
      openssl req -x509 "${key[@]}" -keyout ca.key -out ca.pem -days "$TLS_CERT_DAYS" \
        -subj "/CN=sensor-anomaly dev CA $(date -u +%Y%m%dT%H%M%SZ)" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
      printf '%s\n' basicConstraints=CA:FALSE keyUsage=critical,digitalSignature \
        extendedKeyUsage=serverAuth subjectAltName=IP:127.0.0.1,DNS:localhost >broker.ext
      printf '%s\n' basicConstraints=CA:FALSE keyUsage=critical,digitalSignature \
        extendedKeyUsage=clientAuth >client.ext
      for who in broker client; do
        openssl req "${key[@]}" -keyout "$who.key" -out "$who.csr" -subj "/CN=sensor-anomaly-$who"
        openssl x509 -req -in "$who.csr" -CA ca.pem -CAkey ca.key \
          -set_serial "0x$(openssl rand -hex 16)" -days "$TLS_CERT_DAYS" -extfile "$who.ext" \
          -out "$who.pem"
      done
      # What the broker's PEM keystore wants: its key, then its certificate chain.
      cat broker.key broker.pem ca.pem >broker-keystore.pem
      rm -f -- ./*.csr ./*.ext
      chmod 644 ca.pem broker.pem client.pem
    ) 2>&1
  )"
  status=$?
  set -e
  if ((status != 0)); then
    rm -rf -- "$tmp"
    printf '%s\n' "$out" >&2
    die "openssl could not make the TLS certificates (see its output above)"
  fi
  chmod 700 -- "$tmp"
  mark_owned "$tmp" "TLS certificates for the broker's listeners"
  replace_owned_dir "$tmp" "$TLS_DIR" "$TLS_WHY" "${TLS_LEGACY[@]}"
  echo "made a CA and TLS certificates in $TLS_DIR (valid $TLS_CERT_DAYS days)"
}

ensure_tls_files() {
  tls_files_usable || make_tls_files
}

# Regenerated on every start so port/dir overrides always take effect. Mode 600 before any
# content is written: with SASL it holds the PLAIN passwords.
write_server_properties() {
  local listeners="PLAINTEXT://$HOST:$KAFKA_PORT" protocols="PLAINTEXT:PLAINTEXT"
  if [[ -n "$KAFKA_SASL_PORT" ]]; then
    listeners+=",SASL_PLAINTEXT://$HOST:$KAFKA_SASL_PORT"
    protocols+=",SASL_PLAINTEXT:SASL_PLAINTEXT"
  fi
  if [[ -n "$KAFKA_SSL_PORT" ]]; then
    listeners+=",SSL://$HOST:$KAFKA_SSL_PORT"
    protocols+=",SSL:SSL"
  fi
  if [[ -n "$KAFKA_MTLS_PORT" ]]; then
    listeners+=",MTLS://$HOST:$KAFKA_MTLS_PORT"
    protocols+=",MTLS:SSL"
  fi
  if [[ -n "$KAFKA_SASL_SSL_PORT" ]]; then
    listeners+=",SASL_SSL://$HOST:$KAFKA_SASL_SSL_PORT"
    protocols+=",SASL_SSL:SASL_SSL"
  fi
  (umask 077 && : >>"$PROPS_FILE")
  chmod 600 -- "$PROPS_FILE"
  cat >"$PROPS_FILE" <<EOF
# Generated by scripts/broker.sh on every start; edits here are overwritten.
# Single-node KRaft: this JVM is both the broker and the (only) controller.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT

listeners=$listeners,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=$listeners
listener.security.protocol.map=$protocols,CONTROLLER:PLAINTEXT
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
  if sasl_enabled; then
    local jaas_users="" i listener
    for i in "${!SASL_NAMES[@]}"; do
      jaas_users+=" user_${SASL_NAMES[$i]}=\"${SASL_PASSWORDS[$i]}\""
    done
    cat >>"$PROPS_FILE" <<EOF

# KAFKA_SASL_PORT (SASL_PLAINTEXT) and KAFKA_SASL_SSL_PORT (SASL_SSL, TLS below): SASL for
# clients; brokers and the controller stay on PLAINTEXT. No authorizer: every authenticated
# user may do everything (a dev broker).
sasl.enabled.mechanisms=$SASL_MECHANISMS
EOF
    for listener in sasl_plaintext sasl_ssl; do
      if [[ "$listener" == sasl_plaintext ]]; then
        [[ -n "$KAFKA_SASL_PORT" ]] || continue
      else
        [[ -n "$KAFKA_SASL_SSL_PORT" ]] || continue
      fi
      cat >>"$PROPS_FILE" <<EOF
listener.name.$listener.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required$jaas_users;
listener.name.$listener.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.$listener.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
EOF
    done
  fi
  if tls_enabled; then
    cat >>"$PROPS_FILE" <<EOF

# KAFKA_SSL_PORT (listener SSL), KAFKA_MTLS_PORT (listener MTLS) and KAFKA_SASL_SSL_PORT: TLS
# for clients, with the certificates in $TLS_DIR read as PEM files (no keytool, no store
# passwords; the key is not encrypted: its directory is mode 700). MTLS also wants a client
# certificate from that CA; SASL_SSL wants none, its clients log in.
ssl.keystore.type=PEM
ssl.keystore.location=$TLS_DIR/broker-keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$TLS_DIR/ca.pem
ssl.client.auth=none
listener.name.mtls.ssl.client.auth=required
EOF
  fi
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

# What the SCRAM marker holds: the users' hash, tied to one formatted data dir by its id.
# (printf is a builtin: the users never reach a command line.)
scram_fingerprint() {
  printf '%s\n%s' "$1" "$KAFKA_SASL_USERS" | sha256sum | cut -d' ' -f1
}

# The data dir was formatted before: warn if its SCRAM credentials are not KAFKA_SASL_USERS.
check_scram_users() {
  local cluster_id
  cluster_id="$(sed -n 's/^cluster\.id=//p' "$KAFKA_DATA_DIR/meta.properties")"
  if [[ ! -f "$SCRAM_MARKER" || "$(cat -- "$SCRAM_MARKER")" != "$(scram_fingerprint "$cluster_id")" ]]; then
    echo "warning: KAFKA_SASL_USERS is not what $KAFKA_DATA_DIR was formatted with: PLAIN uses the" \
      "current users, SCRAM still the old ones (SCRAM credentials are only written at format" \
      "time); remove $KAFKA_DATA_DIR to re-create them" >&2
  fi
}

format_storage_if_needed() {
  if [[ -f "$KAFKA_DATA_DIR/meta.properties" ]]; then
    if sasl_enabled; then
      check_scram_users
    fi
    return 0
  fi
  mkdir -p "$KAFKA_DATA_DIR"
  local cluster_id argfile="$BROKER_DIR/format.args" status=0 i mechanism
  cluster_id="$(new_cluster_id)"
  echo "formatting $KAFKA_DATA_DIR (cluster id $cluster_id)"
  # No --standalone: the quorum is given statically by controller.quorum.voters.
  local tool=(kafka.tools.StorageTool format -t "$cluster_id" -c "$PROPS_FILE")
  if sasl_enabled; then
    # The java launcher expands @argfile only up to the main class, so the whole tool command
    # goes in the file; no line needs quoting but the SCRAM entries (passwords have no quote).
    # Removed whatever happens, even if this script dies half-way.
    trap 'rm -f -- "$BROKER_DIR/format.args"' EXIT
    rm -f -- "$argfile"
    (umask 077 && : >"$argfile")
    {
      printf '%s\n' "${tool[@]:0:5}"
      printf "'%s'\n" "${tool[5]}"
      for i in "${!SASL_NAMES[@]}"; do
        for mechanism in SCRAM-SHA-256 SCRAM-SHA-512; do
          printf "%s\n'%s'\n" --add-scram "$mechanism=[name=${SASL_NAMES[$i]},password=${SASL_PASSWORDS[$i]}]"
        done
      done
    } >"$argfile"
    tool=("@$argfile")
  fi
  "$JAVA" -Dlog4j2.configurationFile="$LOG4J2_CONFIG" -cp "$KAFKA_JARS_DIR/*" "${tool[@]}" \
    2>&1 | mask_passwords >"$FORMAT_LOG" || status=$?
  rm -f -- "$argfile"
  trap - EXIT
  if ((status != 0)); then
    cat -- "$FORMAT_LOG" >&2
    die "formatting $KAFKA_DATA_DIR failed"
  fi
  if sasl_enabled; then
    (umask 077 && scram_fingerprint "$cluster_id" >"$SCRAM_MARKER")
  else
    rm -f -- "$SCRAM_MARKER"
  fi
}

print_log_tail() {
  if [[ -f "$LOG_FILE" ]]; then
    echo "---- last 30 lines of $LOG_FILE ----" >&2
    tail -n 30 -- "$LOG_FILE" | mask_passwords >&2
    echo "----" >&2
  fi
}

cmd_start() {
  require_port KAFKA_PORT "$KAFKA_PORT"
  require_port KAFKA_CONTROLLER_PORT "$KAFKA_CONTROLLER_PORT"
  require_seconds BROKER_START_TIMEOUT_SECONDS "$BROKER_START_TIMEOUT_SECONDS"
  require_seconds BROKER_STOP_TIMEOUT_SECONDS "$BROKER_STOP_TIMEOUT_SECONDS"
  [[ "$KAFKA_PORT" != "$KAFKA_CONTROLLER_PORT" ]] || die "KAFKA_PORT and KAFKA_CONTROLLER_PORT must differ"
  if [[ -n "$KAFKA_SASL_PORT" ]]; then
    require_port KAFKA_SASL_PORT "$KAFKA_SASL_PORT"
    [[ "$KAFKA_SASL_PORT" != "$KAFKA_PORT" && "$KAFKA_SASL_PORT" != "$KAFKA_CONTROLLER_PORT" ]] \
      || die "KAFKA_SASL_PORT must differ from KAFKA_PORT and KAFKA_CONTROLLER_PORT"
  fi
  if sasl_enabled; then
    parse_sasl_users
  elif [[ -n "$KAFKA_SASL_USERS" ]]; then
    echo "warning: KAFKA_SASL_USERS is set but neither KAFKA_SASL_PORT nor KAFKA_SASL_SSL_PORT is; no SASL listener" >&2
  fi
  local name other
  for name in KAFKA_SSL_PORT KAFKA_MTLS_PORT KAFKA_SASL_SSL_PORT; do
    [[ -n "${!name}" ]] || continue
    require_port "$name" "${!name}"
    for other in KAFKA_PORT KAFKA_CONTROLLER_PORT KAFKA_SASL_PORT KAFKA_SSL_PORT KAFKA_MTLS_PORT \
      KAFKA_SASL_SSL_PORT; do
      [[ "$other" == "$name" || "${!name}" != "${!other}" ]] || die "$name must differ from $other"
    done
  done
  if tls_enabled; then
    if ! [[ "$TLS_CERT_DAYS" =~ ^[0-9]+$ ]] || ((TLS_CERT_DAYS < 2)); then
      die "TLS_CERT_DAYS must be a whole number of days, at least 2, got '$TLS_CERT_DAYS'"
    fi
  fi
  check_python
  lock_broker_dir

  local pid port sasl_port tls
  if pid="$(our_broker_pid)"; then
    port="$(running_port)"
    sasl_port="$(running_sasl_port)"
    tls="$(running_tls_listeners)"
    echo "broker already running on $HOST:$port${sasl_port:+ (SASL_PLAINTEXT on $HOST:$sasl_port)}${tls:+ ($tls)} (pid $pid)"
    if [[ "$port" != "$KAFKA_PORT" ]]; then
      echo "warning: it listens on $port, not KAFKA_PORT=$KAFKA_PORT; stop it first to change ports" >&2
    fi
    if [[ "$sasl_port" != "$KAFKA_SASL_PORT" ]]; then
      echo "warning: its SASL port is '${sasl_port:-none}', not KAFKA_SASL_PORT='${KAFKA_SASL_PORT:-none}'; stop it first to change it" >&2
    fi
    local wanted=""
    [[ -z "$KAFKA_SSL_PORT" ]] || wanted="SSL $HOST:$KAFKA_SSL_PORT"
    [[ -z "$KAFKA_MTLS_PORT" ]] || wanted+="${wanted:+, }mutual TLS $HOST:$KAFKA_MTLS_PORT"
    [[ -z "$KAFKA_SASL_SSL_PORT" ]] || wanted+="${wanted:+, }SASL_SSL $HOST:$KAFKA_SASL_SSL_PORT"
    if [[ "$tls" != "$wanted" ]]; then
      echo "warning: its TLS listeners are '${tls:-none}', not '${wanted:-none}' (KAFKA_SSL_PORT, KAFKA_MTLS_PORT, KAFKA_SASL_SSL_PORT); stop it first to change them" >&2
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
  if [[ -n "$KAFKA_SASL_PORT" ]] && port_open "$KAFKA_SASL_PORT"; then
    die "SASL port $KAFKA_SASL_PORT on $HOST is already in use (set KAFKA_SASL_PORT)"
  fi
  for name in KAFKA_SSL_PORT KAFKA_MTLS_PORT KAFKA_SASL_SSL_PORT; do
    if [[ -n "${!name}" ]] && port_open "${!name}"; then
      die "TLS port ${!name} on $HOST is already in use (set $name)"
    fi
  done
  rm -f -- "$PID_FILE" # stale: its process is gone or is not our broker

  check_java
  ensure_jars
  if tls_enabled; then
    ensure_tls_files
  fi
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

  # Wait for a real metadata answer, but give up at once if the JVM dies. A subshell that
  # execs, so $! is the python process itself (a backgrounded function would be a bash wrapper).
  (
    unset "${CLIENT_SECURITY_VARS[@]}"
    exec "$PYTHON" "${WAIT_FOR_BROKER[@]}" --brokers "$ADDRESS" --timeout "$BROKER_START_TIMEOUT_SECONDS"
  ) 8>&- 9>&- &
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
    terminate_pid "$pid" broker "$BROKER_STOP_TIMEOUT_SECONDS"
    rm -f -- "$PID_FILE"
    print_log_tail
    die "broker did not answer on $ADDRESS within $BROKER_START_TIMEOUT_SECONDS s; stopped it (log: $LOG_FILE)"
  fi
  local extra=""
  if [[ -n "$KAFKA_SASL_PORT" ]]; then
    # Listeners open together, so this is quick; it proves the JAAS config took.
    if ! sasl_answers 30 "$KAFKA_SASL_PORT" 8>&- 9>&-; then
      terminate_pid "$pid" broker "$BROKER_STOP_TIMEOUT_SECONDS"
      rm -f -- "$PID_FILE"
      print_log_tail
      die "the SASL listener on $HOST:$KAFKA_SASL_PORT did not let user '${SASL_NAMES[0]}' in with PLAIN; stopped the broker (log: $LOG_FILE)"
    fi
    extra+=" and SASL_PLAINTEXT $HOST:$KAFKA_SASL_PORT ($SASL_MECHANISMS; users ${SASL_NAMES[*]})"
  fi
  if [[ -n "$KAFKA_SASL_SSL_PORT" ]]; then
    # TLS with our CA, then the login: proves the keystore and the JAAS config of this listener.
    if ! sasl_answers 30 "$KAFKA_SASL_SSL_PORT" tls 8>&- 9>&-; then
      terminate_pid "$pid" broker "$BROKER_STOP_TIMEOUT_SECONDS"
      rm -f -- "$PID_FILE"
      print_log_tail
      die "the SASL_SSL listener on $HOST:$KAFKA_SASL_SSL_PORT did not let user '${SASL_NAMES[0]}' in with PLAIN over TLS (CA $TLS_DIR/ca.pem); stopped the broker (log: $LOG_FILE)"
    fi
  fi
  # Each TLS listener must answer a client that checks it against the CA (and, on the mutual
  # one, shows the client certificate): proves the keystore, truststore and host name took.
  local port_name mode
  for port_name in KAFKA_SSL_PORT KAFKA_MTLS_PORT; do
    [[ -n "${!port_name}" ]] || continue
    mode=""
    [[ "$port_name" != KAFKA_MTLS_PORT ]] || mode=mutual
    if ! tls_answers "${!port_name}" 30 "$mode" 8>&- 9>&-; then
      terminate_pid "$pid" broker "$BROKER_STOP_TIMEOUT_SECONDS"
      rm -f -- "$PID_FILE"
      print_log_tail
      die "the ${mode:+mutual }TLS listener on $HOST:${!port_name} did not answer a client using $TLS_DIR/ca.pem; stopped the broker (log: $LOG_FILE)"
    fi
  done
  if tls_enabled; then
    extra+=" and $(running_tls_listeners) (CA $TLS_DIR/ca.pem)"
  fi
  echo "broker up on $ADDRESS$extra (pid $pid, log $LOG_FILE)"
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
  terminate_pid "$pid" broker "$BROKER_STOP_TIMEOUT_SECONDS"
  rm -f -- "$PID_FILE"
  echo "broker stopped (pid $pid)"
}

cmd_status() {
  check_python
  local pid sasl_port tls
  if pid="$(our_broker_pid)"; then
    ADDRESS="$HOST:$(running_port)"
    sasl_port="$(running_sasl_port)"
    tls="$(running_tls_listeners)"
    if broker_answers 5; then
      echo "broker running on $ADDRESS${sasl_port:+ and SASL_PLAINTEXT $HOST:$sasl_port}${tls:+ and $tls} (pid $pid, log $LOG_FILE)"
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
