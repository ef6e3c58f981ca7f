#!/usr/bin/env bash
# Local development stack for the orchestrator, without Docker:
#   * Apache Kafka 4.1 in KRaft mode: one combined broker+controller node
#     (or, with --brokers 3, a cluster of three)
#   * PostgreSQL 15
# Both listen on 127.0.0.1 only; all state lives under .local/ of the repository.
#
# Usage: infra/stack.sh <command> [--secure | --brokers 3] [--kafka-only]
#   up        start whatever is not running yet, then wait until both answer
#   down      stop what `up` started (by pid file; SIGKILL after a timeout)
#   status    state and readiness of each service (exit status 3 if not all ready)
#   env       print `export KAFKA_BOOTSTRAP_SERVERS=...` and `export DATABASE_URL=...`
#   logs      tail the logs: `logs [kafka|postgres] [-f]`
#   clean     `down`, then delete all local data (keeps the downloaded Kafka jars)
#   prepare   write a broker's configuration and format its storage, start nothing: for tests
#             that run a broker of their own (STACK_KAFKA_DIR, ports as below; KEY=VALUE args
#             are added to its server.properties)
# --kafka-only: `up`, `down` and `status` leave PostgreSQL alone.
#
# --brokers 3: the same commands for a three-broker cluster beside the single broker, data in
# .local/kafka-cluster/node-N/. Each node is broker and controller; the three controllers form
# the KRaft quorum, so the cluster survives one node down. Every topic has 3 replicas
# (default.replication.factor, and ORCHESTRATOR_REPLICATION_FACTOR=3 from `env`) and a write
# needs at least 2 of them in sync (min.insync.replicas=2; the consumer offsets and transaction
# state alike). Broker N listens on STACK_CLUSTER_PORT+N (19101-19103), its controller on
# STACK_CLUSTER_PORT+10+N (19111-19113). `down --brokers 3` stops the cluster and PostgreSQL,
# `down` without --brokers the cluster too; `clean --brokers 3` deletes only the cluster's data.
# One broker at a time (N = 1, 2 or 3; no --brokers needed):
#   broker-pid N      print the broker's pid (exit status 1 if it is not running)
#   kill-broker N     SIGKILL, as a crash would
#   pause-broker N    SIGSTOP (it keeps its sockets but answers nothing); resume-broker N: SIGCONT
#   stop-broker N     SIGTERM: controlled shutdown, leadership moved first
#   start-broker N    start it again, then wait until it is registered and back in the ISR of
#                     each of its partitions
#   restart-broker N  stop-broker N (if it runs), then start-broker N
#
# --secure (or ORCHESTRATOR_SECURE=1): the same commands for the secure profile, a second
# broker beside the plaintext one, with its own data in .local/kafka-secure/: a SASL_SSL
# listener (SCRAM-SHA-512, TLS with a local CA generated into .local/kafka-secure/tls/), a
# password per principal in .local/kafka-secure/credentials/, and the StandardAuthorizer
# denying whatever no ACL allows (`orchestrator acl apply`). `env --secure` prints the admin's
# client settings, and IDENTITY_MODE=verify: agents' records and the orchestrator's decisions
# count only when signed with enrolled keys. PostgreSQL is shared by both profiles: `down
# --secure` stops only the secure broker, `clean --secure` deletes only its data and key
# material. With --secure, KAFKA_BOOTSTRAP_SERVERS names an external broker only with
# KAFKA_SECURITY_PROTOCOL=SASL_SSL (and that broker's credentials in KAFKA_SASL_*, KAFKA_SSL_CAFILE).
#
# Environment (all optional):
#   KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL
#       Use these endpoints instead of starting the local service; `up` then only
#       checks that they answer. A value equal to the local endpoint counts as local.
#   STACK_KAFKA_PORT (19092)   STACK_KAFKA_CONTROLLER_PORT (19093)   STACK_PG_PORT (15432)
#   STACK_SECURE_KAFKA_PORT (19094)   STACK_SECURE_KAFKA_CONTROLLER_PORT (19095)
#   STACK_KAFKA_DIR (.local/kafka, or .local/kafka-secure)   the broker's data, logs and pid file
#   STACK_CLUSTER_PORT (19100)   STACK_CLUSTER_DIR (.local/kafka-cluster)   the cluster's, as above
#   STACK_TIMEOUT (90)         seconds `up` waits for the services to answer
#   STACK_STOP_TIMEOUT (30)    seconds `down` waits before SIGKILL / immediate shutdown
#   STACK_PG_OS_USER (orchestrator)
#       unprivileged system user that runs PostgreSQL when this script runs as root
#   PG_BIN (/usr/lib/postgresql/15/bin)   JAVA_HOME or JAVA   PYTHON (python3)
#   KAFKA_HEAP_OPTS (-Xms256m -Xmx1g; for each broker of the cluster -Xms128m -Xmx512m)
#   KAFKA_JVM_OPTS (G1 settings)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
INFRA="$ROOT/infra"
LOCAL="$ROOT/.local"

SECURE=0
case "${ORCHESTRATOR_SECURE:-0}" in 1|true|yes) SECURE=1 ;; esac
BROKERS="" KAFKA_ONLY=0
ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --secure) SECURE=1 ;;
        --kafka-only) KAFKA_ONLY=1 ;;
        --brokers=*) BROKERS="${1#--brokers=}" ;;
        --brokers)
            [ $# -gt 1 ] || { printf 'stack: error: --brokers needs a number (1 or 3)\n' >&2; exit 2; }
            BROKERS="$2"; shift ;;
        *) ARGS+=("$1") ;;
    esac
    shift
done
set -- ${ARGS[@]+"${ARGS[@]}"}
case "${1:-}" in  # the commands on one broker of the cluster
    broker-pid|kill-broker|pause-broker|resume-broker|stop-broker|start-broker|restart-broker)
        BROKERS="${BROKERS:-3}" ;;
esac
case "$BROKERS" in
    ""|1) CLUSTER=0 ;;
    3) CLUSTER=1 ;;
    *) printf 'stack: error: --brokers takes 1 (the default) or 3, not "%s"\n' "$BROKERS" >&2; exit 2 ;;
esac
if [ "$CLUSTER" = 1 ] && [ "$SECURE" = 1 ]; then
    printf 'stack: error: the three-broker cluster is plaintext only; --secure and --brokers 3 do not combine\n' >&2
    exit 2
fi

if [ "$SECURE" = 1 ]; then
    KAFKA_PORT="${STACK_SECURE_KAFKA_PORT:-19094}"
    KAFKA_CONTROLLER_PORT="${STACK_SECURE_KAFKA_CONTROLLER_PORT:-19095}"
    KAFKA_PORT_VAR=STACK_SECURE_KAFKA_PORT KAFKA_CONTROLLER_PORT_VAR=STACK_SECURE_KAFKA_CONTROLLER_PORT
else
    KAFKA_PORT="${STACK_KAFKA_PORT:-19092}"
    KAFKA_CONTROLLER_PORT="${STACK_KAFKA_CONTROLLER_PORT:-19093}"
    KAFKA_PORT_VAR=STACK_KAFKA_PORT KAFKA_CONTROLLER_PORT_VAR=STACK_KAFKA_CONTROLLER_PORT
fi
SINGLE_KAFKA_PORT="$KAFKA_PORT"
PG_PORT="${STACK_PG_PORT:-15432}"
TIMEOUT="${STACK_TIMEOUT:-90}"
STOP_TIMEOUT="${STACK_STOP_TIMEOUT:-30}"
PG_OS_USER="${STACK_PG_OS_USER:-orchestrator}"
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
PYTHON="${PYTHON:-python3}"

DB_NAME=orchestrator
DB_USER=orchestrator
DB_PASSWORD=orchestrator
LOCAL_KAFKA="127.0.0.1:$KAFKA_PORT"

# The three-broker cluster: node N in $CLUSTER_DIR/node-N, broker on CLUSTER_PORT+N,
# controller on CLUSTER_PORT+10+N.
CLUSTER_SIZE=3
CLUSTER_PORT="${STACK_CLUSTER_PORT:-19100}"
if ! [[ "$CLUSTER_PORT" =~ ^[0-9]+$ ]] || [ "$CLUSTER_PORT" -lt 1 ] || [ "$CLUSTER_PORT" -gt 65500 ]; then
    printf 'stack: error: STACK_CLUSTER_PORT must be a port number up to 65500, not "%s"\n' "$CLUSTER_PORT" >&2
    exit 2
fi
CLUSTER_DIR="${STACK_CLUSTER_DIR:-$LOCAL/kafka-cluster}"
CLUSTER_BOOTSTRAP="127.0.0.1:$((CLUSTER_PORT + 1)),127.0.0.1:$((CLUSTER_PORT + 2)),127.0.0.1:$((CLUSTER_PORT + 3))"
[ "$CLUSTER" = 0 ] || LOCAL_KAFKA="$CLUSTER_BOOTSTRAP"
LOCAL_DB_URL="postgresql://$DB_USER:$DB_PASSWORD@127.0.0.1:$PG_PORT/$DB_NAME"

KAFKA_LIBS="$LOCAL/kafka/libs"  # one set of jars for both profiles
KAFKA_DIR="$LOCAL/kafka"
[ "$SECURE" = 1 ] && KAFKA_DIR="$LOCAL/kafka-secure"
KAFKA_DIR="${STACK_KAFKA_DIR:-$KAFKA_DIR}"
KAFKA_REL="${KAFKA_DIR#"$ROOT"/}"
SECURE_FLAG=""
[ "$SECURE" = 1 ] && SECURE_FLAG=" --secure"
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_LOGS="$KAFKA_DIR/logs"
KAFKA_PROPS="$KAFKA_DIR/server.properties"
KAFKA_PIDFILE="$KAFKA_DIR/kafka.pid"
KAFKA_CLUSTER_ID_FILE="$KAFKA_DIR/cluster-id"
KAFKA_POM="$INFRA/kafka/pom.xml"
KAFKA_LOG4J="$INFRA/kafka/log4j2.yaml"
# Secure profile: key material (infra/../services/security/material.py) and its principals.
# One CA and one set of passwords for every secure broker of the checkout (a test's own too).
SECURE_MATERIAL="$LOCAL/kafka-secure"
SECURE_TLS="$SECURE_MATERIAL/tls"
SECURE_CREDENTIALS="$SECURE_MATERIAL/credentials"
ACL_FILE="$INFRA/acls.toml"
SCRAM_MECHANISM=SCRAM-SHA-512

# .local/pg is the PostgreSQL root (data/, postgres.log, run/). When the checkout
# sits below a directory the unprivileged user cannot enter, it is a symlink to
# a per-checkout directory under $PG_SHARED_PARENT instead.
PG_LINK="$LOCAL/pg"
PG_SHARED_PARENT="/var/tmp/orchestrator-pg"
PG_ROOT="" PG_DATA="" PG_LOG="" PG_SOCK=""

# ---------------------------------------------------------------- helpers ----

say()  { end_dots; printf 'stack: %s\n' "$*"; }
warn() { end_dots; printf 'stack: %s\n' "$*" >&2; }
die()  { end_dots; printf 'stack: error: %s\n' "$*" >&2; exit 1; }

now_us() { printf '%s' "${EPOCHREALTIME/[.,]/}"; }
# since START_US -> "1.2s"
since() {
    local d=$(( ${EPOCHREALTIME/[.,]/} - $1 ))
    printf '%d.%ds' $(( d / 1000000 )) $(( d % 1000000 / 100000 ))
}

DOTS_OPEN=0
dot() { if [ "$DOTS_OPEN" = 0 ]; then printf 'stack: waiting '; DOTS_OPEN=1; fi; printf '.'; }
end_dots() { if [ "$DOTS_OPEN" = 1 ]; then printf '\n'; DOTS_OPEN=0; fi; }

is_root() { [ "$(id -u)" -eq 0 ]; }

LOCKED=0
lock() {  # serialize up/down/clean of this checkout
    [ "$LOCKED" = 1 ] && return 0
    mkdir -p "$LOCAL"
    exec 9>"$LOCAL/.stack.lock"
    flock -w 300 9 || die "another infra/stack.sh is still running for $ROOT"
    LOCKED=1
}

apt_install() {  # REASON PACKAGE...
    local why="$1"; shift
    if ! is_root || ! command -v apt-get >/dev/null 2>&1; then
        die "$why; install it (Debian/Ubuntu: apt-get install $*) and retry"
    fi
    local pkg missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
    done
    [ "${#missing[@]}" -gt 0 ] || return 0  # installed already: the caller reports what is wrong
    set -- "${missing[@]}"
    say "$why; installing $* with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "$@" </dev/null \
        || { apt-get update -qq </dev/null && apt-get install -y -qq --no-install-recommends "$@" </dev/null; } \
        || die "apt-get install $* failed"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

port_owner() {  # best effort: which process listens on 127.0.0.1:PORT
    command -v ss >/dev/null 2>&1 || return 0
    ss -ltnpH "sport = :$1" 2>/dev/null | sed -n 's/.*users:(\(.*\))$/ (listener: \1)/p' | head -n1
}

require_free_port() {  # PORT WHAT VARNAME
    if port_busy "$1"; then
        die "port 127.0.0.1:$1 ($2) is already in use$(port_owner "$1"); stop that process or set $3 to another port"
    fi
}

alive() {  # PID: running, and not a zombie waiting to be reaped
    kill -0 "$1" 2>/dev/null || return 1
    if [ -r "/proc/$1/stat" ]; then
        local stat
        stat="$(<"/proc/$1/stat")" 2>/dev/null || return 1
        stat="${stat##*) }"
        case "${stat%% *}" in Z|X|x) return 1 ;; esac
    fi
    return 0
}

proc_args() {  # PID -> command line (space separated)
    if [ -r "/proc/$1/cmdline" ]; then tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null
    else ps -o args= -p "$1" 2>/dev/null; fi
}

stop_pid() {  # PID NAME: SIGTERM, wait STOP_TIMEOUT, then SIGKILL
    local pid="$1" name="$2" t0 waited=0
    t0=$(now_us)
    kill -TERM "$pid" 2>/dev/null || return 0
    while alive "$pid"; do
        if [ "$waited" -ge $(( STOP_TIMEOUT * 10 )) ]; then
            warn "$name (pid $pid) still running after ${STOP_TIMEOUT}s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.2
            break
        fi
        sleep 0.1
        waited=$(( waited + 1 ))
    done
    say "$name: stopped (pid $pid, $(since "$t0"))"
}

tail_log() {  # FILE [LINES]
    [ -s "$1" ] || return 0
    printf 'stack: --- last lines of %s ---\n' "${1#"$ROOT"/}" >&2
    tail -n "${2:-30}" "$1" | sed 's/^/    /' >&2
}

# URL for display: hide the password of an external DATABASE_URL.
show_url() {
    local url="${1%%\?*}"
    if [ "$PG_EXTERNAL" = 1 ]; then url="$(printf '%s' "$url" | sed -E 's#(//[^:/@]*):[^@]*@#\1:***@#')"; fi
    printf '%s' "$url"
}

# A value the user may paste back into a shell.
shell_quote() {
    if [[ "$1" =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then printf '%s' "$1"; else printf '%q' "$1"; fi
}

# ---------------------------------------------------------------- endpoints --

resolve_endpoints() {
    KAFKA_EXTERNAL=0 PG_EXTERNAL=0
    KAFKA_EP="$LOCAL_KAFKA" DB_URL="$LOCAL_DB_URL"
    local k="${KAFKA_BOOTSTRAP_SERVERS:-}" d="${DATABASE_URL:-}"
    # A secure broker elsewhere comes with its own credentials; a plaintext endpoint from the
    # environment (say, the plaintext stack's `make env`) is not the secure profile's broker.
    if [ "$SECURE" = 1 ] && [ "${KAFKA_SECURITY_PROTOCOL:-PLAINTEXT}" != SASL_SSL ]; then k=""; fi
    # Nor is the single broker's endpoint the cluster.
    if [ "$CLUSTER" = 1 ] && { [ "$k" = "127.0.0.1:$SINGLE_KAFKA_PORT" ] || [ "$k" = "localhost:$SINGLE_KAFKA_PORT" ]; }; then
        k=""
    fi
    if [ -n "$k" ] && [ "$k" != "$LOCAL_KAFKA" ] && [ "$k" != "localhost:$KAFKA_PORT" ]; then
        KAFKA_EXTERNAL=1 KAFKA_EP="$k"
    fi
    if [ -n "$d" ] && [ "$d" != "$LOCAL_DB_URL" ]; then
        PG_EXTERNAL=1 DB_URL="$d"
    fi
}

# ---------------------------------------------------------------- kafka ------

find_java() {
    [ -n "${JAVA:-}" ] && return 0
    if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then JAVA="$JAVA_HOME/bin/java"; return 0; fi
    command -v java >/dev/null 2>&1 || apt_install "java (17+) not found; Kafka needs it" openjdk-17-jre-headless
    JAVA="$(command -v java)"
}

ensure_kafka_libs() {
    local want have="" t0
    want="$(sha256sum "$KAFKA_POM" | cut -d' ' -f1)"
    [ -f "$KAFKA_LIBS/.pom.sha256" ] && have="$(<"$KAFKA_LIBS/.pom.sha256")"
    if [ "$want" = "$have" ] && compgen -G "$KAFKA_LIBS/kafka_2.13-*.jar" >/dev/null; then
        return 0
    fi
    command -v mvn >/dev/null 2>&1 || apt_install "mvn (Apache Maven) not found; it fetches the Kafka jars" maven
    t0=$(now_us)
    say "kafka: resolving the broker jars (infra/kafka/pom.xml) into .local/kafka/libs ..."
    mkdir -p "$LOCAL/kafka"
    rm -rf "$KAFKA_LIBS.tmp"
    if ! mvn -B -Dstyle.color=never -f "$KAFKA_POM" dependency:copy-dependencies \
            -DoutputDirectory="$KAFKA_LIBS.tmp" -DincludeScope=runtime \
            >"$LOCAL/kafka/mvn.log" 2>&1 </dev/null; then
        rm -rf "$KAFKA_LIBS.tmp"
        tail_log "$LOCAL/kafka/mvn.log" 40
        die "maven could not resolve infra/kafka/pom.xml (full output: .local/kafka/mvn.log)"
    fi
    printf '%s\n' "$want" >"$KAFKA_LIBS.tmp/.pom.sha256"
    rm -rf "$KAFKA_LIBS"
    mv "$KAFKA_LIBS.tmp" "$KAFKA_LIBS"
    say "kafka: $(compgen -G "$KAFKA_LIBS/*.jar" | wc -l) jars resolved in $(since "$t0")"
}

kafka_pid() {  # prints the pid of the broker `up` started, fails if it is not running
    local pid
    [ -f "$KAFKA_PIDFILE" ] || return 1
    pid="$(<"$KAFKA_PIDFILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    alive "$pid" || return 1
    [[ "$(proc_args "$pid")" == *"kafka.Kafka $KAFKA_PROPS"* ]] || return 1
    printf '%s\n' "$pid"
}

new_cluster_id() {  # Kafka Uuid format: 16 random bytes, URL-safe base64, no padding
    local id
    while :; do
        id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
        [[ "$id" != -* ]] && break
    done
    printf '%s\n' "$id"
}

plaintext_listeners() {
    cat <<EOF
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
EOF
}

# Every listener is SASL over TLS. Clients and the broker itself (inter-broker: transaction
# markers go to the partition leader, i.e. to itself) authenticate with SCRAM-SHA-512 against
# credentials stored in the cluster metadata at format time. The controller listener uses PLAIN
# with a static user: SCRAM credentials live in the metadata the controller serves, so they
# cannot authenticate the controller's own connections.
secure_listeners() {
    local broker_password
    broker_password="$(<"$SECURE_CREDENTIALS/broker.password")"
    cat <<EOF
listeners=SASL_SSL://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=SASL_SSL://127.0.0.1:$KAFKA_PORT
inter.broker.listener.name=SASL_SSL
listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SASL_SSL
sasl.enabled.mechanisms=$SCRAM_MECHANISM
sasl.mechanism.inter.broker.protocol=$SCRAM_MECHANISM
sasl.mechanism.controller.protocol=PLAIN
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="$broker_password";
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="broker" password="$broker_password" user_broker="$broker_password";
ssl.keystore.type=PEM
ssl.keystore.location=$SECURE_TLS/broker.pem
ssl.truststore.type=PEM
ssl.truststore.location=$SECURE_TLS/ca.pem
ssl.endpoint.identification.algorithm=https
ssl.client.auth=none
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:broker;User:admin
EOF
}

# The principals of the secure profile: the broker, admin and every principal of infra/acls.toml.
secure_principals() {
    (cd "$ROOT" && "$PYTHON" -m services.security.acls principals "$ACL_FILE")
}

ensure_secure_material() {
    local principals out
    principals="$(secure_principals)" || die "cannot read the principals of ${ACL_FILE#"$ROOT"/}"
    # shellcheck disable=SC2086  # one word per principal
    out="$(cd "$ROOT" && "$PYTHON" -m services.security.material "$SECURE_MATERIAL" broker admin $principals)" \
        || die "kafka: generating the TLS certificates and passwords in ${SECURE_MATERIAL#"$ROOT"/} failed"
    [ -z "$out" ] || say "kafka: $out (in ${SECURE_MATERIAL#"$ROOT"/})"
}

scram_format_args() {  # --add-scram for every principal that has a password
    local file
    for file in "$SECURE_CREDENTIALS"/*.password; do
        printf -- '--add-scram\n%s=[name=%s,password=%s]\n' "$SCRAM_MECHANISM" \
            "$(basename "$file" .password)" "$(<"$file")"
    done
}

write_kafka_props() {
    cat >"$KAFKA_PROPS" <<EOF
# Generated by infra/stack.sh on every start; edit the script, not this file.
# Single-node KRaft cluster: one process is both broker and controller.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
controller.listener.names=CONTROLLER
$(if [ "$SECURE" = 1 ]; then secure_listeners; else plaintext_listeners; fi)
log.dirs=$KAFKA_DATA
$(printf '%s\n' ${EXTRA_PROPS[@]+"${EXTRA_PROPS[@]}"})

# One broker: internal topics cannot be replicated.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1

# Topics are created explicitly by the application (with their own retention).
auto.create.topics.enable=false
num.partitions=6
group.initial.rebalance.delay.ms=0
EOF
}

# The broker's configuration, written afresh, and its storage, formatted once: all a broker
# needs before `java kafka.Kafka server.properties` (which start_kafka runs, and tests that
# run a broker of their own through `infra/stack.sh prepare`).
prepare_kafka() {
    local cid
    ensure_kafka_libs
    find_java
    mkdir -p "$KAFKA_DATA" "$KAFKA_LOGS"
    [ "$SECURE" = 0 ] || ensure_secure_material
    (umask 077 && write_kafka_props)  # the secure profile's file holds the broker's password
    JVM_COMMON=(-Dkafka.logs.dir="$KAFKA_LOGS" -Dlog4j2.configurationFile="$KAFKA_LOG4J" -cp "$KAFKA_LIBS/*")
    if [ ! -f "$KAFKA_DATA/meta.properties" ]; then
        [ -s "$KAFKA_CLUSTER_ID_FILE" ] || new_cluster_id >"$KAFKA_CLUSTER_ID_FILE"
        cid="$(<"$KAFKA_CLUSTER_ID_FILE")"
        local tf scram=()
        tf=$(now_us)
        [ "$SECURE" = 0 ] || mapfile -t scram < <(scram_format_args)
        if ! "$JAVA" -Xmx256m -XX:TieredStopAtLevel=1 -Xshare:auto "${JVM_COMMON[@]}" \
                kafka.tools.StorageTool format --config "$KAFKA_PROPS" --cluster-id "$cid" ${scram[@]+"${scram[@]}"} \
                >"$KAFKA_LOGS/format.log" 2>&1 </dev/null; then
            tail_log "$KAFKA_LOGS/format.log"
            die "kafka: formatting the storage in $KAFKA_REL/data failed"
        fi
        say "kafka: formatted storage, cluster id $cid ($(since "$tf"))"
    elif [ ! -s "$KAFKA_CLUSTER_ID_FILE" ]; then
        sed -n 's/^cluster.id=//p' "$KAFKA_DATA/meta.properties" >"$KAFKA_CLUSTER_ID_FILE"
    fi
}

start_kafka() {
    local t0 pid
    t0=$(now_us)
    prepare_kafka
    require_free_port "$KAFKA_PORT" "Kafka broker" "$KAFKA_PORT_VAR"
    require_free_port "$KAFKA_CONTROLLER_PORT" "Kafka controller" "$KAFKA_CONTROLLER_PORT_VAR"
    launch_kafka "-Xms256m -Xmx1g"
    pid="$LAUNCHED_PID"
    KAFKA_WATCH_PID="$pid"
    say "kafka: started broker+controller, pid $pid, 127.0.0.1:$KAFKA_PORT ($(since "$t0") to launch)"
}

# Starts `java kafka.Kafka $KAFKA_PROPS` in the background, its pid in $KAFKA_PIDFILE and
# LAUNCHED_PID; HEAP is the default of KAFKA_HEAP_OPTS.
launch_kafka() {  # HEAP
    # shellcheck disable=SC2206  # word splitting of the option strings is intended
    local heap=(${KAFKA_HEAP_OPTS:-$1})
    # shellcheck disable=SC2206
    local jvm=(${KAFKA_JVM_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true})
    rm -f "$KAFKA_PIDFILE"
    # One server.log per run (the previous one is kept), so errors shown on a
    # failed start are from this run.
    if [ -s "$KAFKA_LOGS/server.log" ]; then mv -f "$KAFKA_LOGS/server.log" "$KAFKA_LOGS/server.log.prev"; fi
    # setsid: own session, so the broker survives the terminal / make job that
    # started it. The inner shell records its own pid and then execs java.
    # shellcheck disable=SC2016  # $$ is expanded by the inner shell
    nohup setsid bash -c 'echo $$ >"$0" && exec "$@"' "$KAFKA_PIDFILE" \
        "$JAVA" "${heap[@]}" "${jvm[@]}" "${JVM_COMMON[@]}" kafka.Kafka "$KAFKA_PROPS" \
        >"$KAFKA_LOGS/kafka.out" 2>&1 </dev/null 9>&- &
    for _ in $(seq 50); do [ -s "$KAFKA_PIDFILE" ] && break; sleep 0.02; done
    [ -s "$KAFKA_PIDFILE" ] || die "kafka: the broker process did not start (see $KAFKA_REL/logs/kafka.out)"
    LAUNCHED_PID="$(<"$KAFKA_PIDFILE")"
}

probe_kafka() {
    if [ "$SECURE" = 1 ] && [ "$KAFKA_EXTERNAL" = 1 ]; then
        (cd "$ROOT" && "$PYTHON" -m services.security.probe)  # with the environment's credentials
    elif [ "$SECURE" = 1 ]; then
        # A Metadata request over SASL_SSL as admin, through the project's own client settings.
        (cd "$ROOT" && eval "$(secure_env "$1")" && "$PYTHON" -m services.security.probe)
    elif [ "$CLUSTER" = 1 ] && [ "$KAFKA_EXTERNAL" = 0 ]; then
        "$PYTHON" "$INFRA/probe.py" kafka "$1" --brokers "$CLUSTER_SIZE"  # every broker registered
    else
        "$PYTHON" "$INFRA/probe.py" kafka "$1"
    fi
}

secure_env() {  # BOOTSTRAP: what a client needs to reach the secure broker as admin
    printf 'export KAFKA_BOOTSTRAP_SERVERS=%s\n' "$(shell_quote "$1")"
    printf 'export KAFKA_SECURITY_PROTOCOL=SASL_SSL\n'
    printf 'export KAFKA_SASL_MECHANISM=%s\n' "$SCRAM_MECHANISM"
    printf 'export KAFKA_SASL_USERNAME=admin\n'
    printf 'export KAFKA_SASL_PASSWORD_FILE=%s\n' "$(shell_quote "$SECURE_CREDENTIALS/admin.password")"
    printf 'export KAFKA_SSL_CAFILE=%s\n' "$(shell_quote "$SECURE_TLS/ca.pem")"
}

# ---------------------------------------------------------------- cluster ----

select_node() {  # N: point the broker paths and ports (KAFKA_*) at node N of the cluster
    KAFKA_DIR="$CLUSTER_DIR/node-$1"
    KAFKA_REL="${KAFKA_DIR#"$ROOT"/}"
    KAFKA_DATA="$KAFKA_DIR/data"
    KAFKA_LOGS="$KAFKA_DIR/logs"
    KAFKA_PROPS="$KAFKA_DIR/server.properties"
    KAFKA_PIDFILE="$KAFKA_DIR/kafka.pid"
    KAFKA_PORT=$((CLUSTER_PORT + $1)) KAFKA_CONTROLLER_PORT=$((CLUSTER_PORT + 10 + $1))
    JVM_COMMON=(-Dkafka.logs.dir="$KAFKA_LOGS" -Dlog4j2.configurationFile="$KAFKA_LOG4J" -cp "$KAFKA_LIBS/*")
}

cluster_nodes() { seq "$CLUSTER_SIZE"; }

cluster_voters() {
    local n voters=()
    for n in $(cluster_nodes); do voters+=("$n@127.0.0.1:$((CLUSTER_PORT + 10 + n))"); done
    (IFS=,; printf '%s' "${voters[*]}")
}

write_node_props() {  # N, after select_node N
    cat >"$KAFKA_PROPS" <<EOF
# Generated by infra/stack.sh on every \`up --brokers $CLUSTER_SIZE\`; edit the script, not this file.
# Node $1 of a $CLUSTER_SIZE-node KRaft cluster: every node is broker and controller, and the
# controllers are the quorum's voters, so the cluster survives one node down.
process.roles=broker,controller
node.id=$1
controller.quorum.voters=$(cluster_voters)
controller.listener.names=CONTROLLER
$(plaintext_listeners)
log.dirs=$KAFKA_DATA

# Every partition on three brokers; a write with acks=all is acknowledged once every in-sync
# replica holds it, and refused while fewer than two are in sync: one broker may be down
# without stopping writes or losing an acknowledged one.
default.replication.factor=3
min.insync.replicas=2
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2

# Topics are created explicitly by the application (with their own retention).
auto.create.topics.enable=false
num.partitions=6
group.initial.rebalance.delay.ms=0
EOF
}

# Every node's configuration, written afresh, and its storage, formatted once with the
# cluster's one id (the nodes in parallel).
prepare_cluster() {
    local n cid tf formatting=() failed=()
    ensure_kafka_libs
    find_java
    mkdir -p "$CLUSTER_DIR"
    if [ ! -s "$CLUSTER_DIR/cluster-id" ]; then
        cid="$(cat "$CLUSTER_DIR"/node-*/data/meta.properties 2>/dev/null | sed -n 's/^cluster.id=//p' | head -n1)" || true
        printf '%s\n' "${cid:-$(new_cluster_id)}" >"$CLUSTER_DIR/cluster-id"
    fi
    cid="$(<"$CLUSTER_DIR/cluster-id")"
    tf=$(now_us)
    for n in $(cluster_nodes); do
        select_node "$n"
        mkdir -p "$KAFKA_DATA" "$KAFKA_LOGS"
        write_node_props "$n"
        [ -f "$KAFKA_DATA/meta.properties" ] && continue
        "$JAVA" -Xmx256m -XX:TieredStopAtLevel=1 -Xshare:auto "${JVM_COMMON[@]}" \
            kafka.tools.StorageTool format --config "$KAFKA_PROPS" --cluster-id "$cid" \
            >"$KAFKA_LOGS/format.log" 2>&1 </dev/null 9>&- &
        formatting+=("$n:$!")
    done
    for n in ${formatting[@]+"${formatting[@]}"}; do
        wait "${n#*:}" || failed+=("${n%%:*}")
    done
    for n in ${failed[@]+"${failed[@]}"}; do
        select_node "$n"
        tail_log "$KAFKA_LOGS/format.log"
        die "kafka: formatting the storage of broker $n in $KAFKA_REL/data failed"
    done
    [ "${#formatting[@]}" = 0 ] \
        || say "kafka: formatted the storage of ${#formatting[@]} brokers, cluster id $cid ($(since "$tf"))"
}

start_node() {  # N, after select_node N, its storage formatted; sets LAUNCHED_PID
    local t0
    t0=$(now_us)
    if [ -f "$KAFKA_PIDFILE" ]; then
        say "kafka: broker $1: removing stale pid file (pid $(<"$KAFKA_PIDFILE") is not our broker)"
        rm -f "$KAFKA_PIDFILE"
    fi
    require_free_port "$KAFKA_PORT" "Kafka broker $1" STACK_CLUSTER_PORT
    require_free_port "$KAFKA_CONTROLLER_PORT" "Kafka controller $1" STACK_CLUSTER_PORT
    launch_kafka "-Xms128m -Xmx512m"
    say "kafka: started broker+controller $1, pid $LAUNCHED_PID, 127.0.0.1:$KAFKA_PORT" \
        "(controller 127.0.0.1:$KAFKA_CONTROLLER_PORT, $(since "$t0") to launch)"
}

start_cluster() {  # the nodes not running yet; CLUSTER_WATCH lists N:PID of each node
    local n pid
    prepare_cluster
    CLUSTER_WATCH=()
    for n in $(cluster_nodes); do
        select_node "$n"
        if pid="$(kafka_pid)"; then
            say "kafka: broker $n already running, pid $pid"
        else
            start_node "$n"
            pid="$LAUNCHED_PID"
        fi
        CLUSTER_WATCH+=("$n:$pid")
    done
}

cluster_exited() {  # dies, with its logs, if a broker `up` waits for has exited
    local entry
    for entry in ${CLUSTER_WATCH[@]+"${CLUSTER_WATCH[@]}"}; do
        alive "${entry#*:}" && continue
        select_node "${entry%%:*}"
        rm -f "$KAFKA_PIDFILE"
        tail_log "$KAFKA_LOGS/kafka.out"
        tail_log "$KAFKA_LOGS/server.log"
        die "kafka: broker ${entry%%:*} exited (logs: $KAFKA_REL/logs/)"
    done
}

cluster_logs_hint() {  # the end of each broker's log, after `up` gave up waiting
    local n
    for n in $(cluster_nodes); do
        select_node "$n"
        tail_log "$KAFKA_LOGS/server.log" 10
    done
    warn "kafka logs: ${CLUSTER_DIR#"$ROOT"/}/node-*/logs/ (the brokers are left running;" \
        "\`infra/stack.sh down --brokers $CLUSTER_SIZE\` stops them)"
}

# All at once: each broker's controlled shutdown needs an active controller, which the last
# voter standing would not have.
stop_cluster() {  # [quiet]: say nothing about brokers that are not running
    local n pid t0 waited=0 stopping=() left=()
    t0=$(now_us)
    for n in $(cluster_nodes); do
        select_node "$n"
        if pid="$(kafka_pid)"; then
            kill -CONT "$pid" 2>/dev/null || true  # a paused broker cannot act on SIGTERM
            kill -TERM "$pid" 2>/dev/null || true
            stopping+=("$n:$pid")
        elif [ -f "$KAFKA_PIDFILE" ]; then
            rm -f "$KAFKA_PIDFILE"
            [ "${1:-}" = quiet ] || say "kafka: broker $n not running (removed stale pid file)"
        else
            [ "${1:-}" = quiet ] || say "kafka: broker $n not running"
        fi
    done
    while [ "${#stopping[@]}" -gt 0 ]; do  # then SIGKILL after STOP_TIMEOUT, as stop_pid does
        left=()
        for n in "${stopping[@]}"; do
            if [ "$waited" -ge $(( STOP_TIMEOUT * 10 )) ] && alive "${n#*:}"; then
                warn "kafka broker ${n%%:*} (pid ${n#*:}) still running after ${STOP_TIMEOUT}s; sending SIGKILL"
                kill -KILL "${n#*:}" 2>/dev/null || true
                sleep 0.2
            fi
            if alive "${n#*:}"; then left+=("$n"); continue; fi
            select_node "${n%%:*}"
            rm -f "$KAFKA_PIDFILE"
            say "kafka broker ${n%%:*}: stopped (pid ${n#*:}, $(since "$t0"))"
        done
        stopping=(${left[@]+"${left[@]}"})
        [ "${#stopping[@]}" = 0 ] || sleep 0.1
        waited=$(( waited + 1 ))
    done
}

cluster_status() {  # returns 3 unless every broker runs and every partition is fully replicated
    local n pid out rc=0
    for n in $(cluster_nodes); do
        select_node "$n"
        if pid="$(kafka_pid)"; then
            say "kafka:    broker $n running, pid $pid, 127.0.0.1:$KAFKA_PORT (controller 127.0.0.1:$KAFKA_CONTROLLER_PORT)"
        else
            say "kafka:    broker $n stopped"; rc=3
        fi
    done
    if out="$("$PYTHON" "$INFRA/probe.py" kafka "$KAFKA_EP" --brokers "$CLUSTER_SIZE" --in-sync 2>&1)"; then
        say "kafka:    cluster answering: $out"
    else
        say "kafka:    cluster NOT whole: $out"; rc=3
    fi
    return "$rc"
}

# Waits until broker N (pid PID, started at T0) is registered with the controller, then until it
# is back in the ISR of every partition it holds a replica of.
wait_broker() {  # N PID T0
    local n="$1" pid="$2" t0="$3" deadline out="" ticks=0 phase=registered
    deadline=$(( ${EPOCHREALTIME/[.,]/} + TIMEOUT * 1000000 ))
    while :; do
        if ! alive "$pid"; then
            tail_log "$KAFKA_LOGS/server.log"
            die "kafka: broker $n exited (logs: $KAFKA_REL/logs/)"
        fi
        if [ "$phase" = registered ]; then
            if out="$("$PYTHON" "$INFRA/probe.py" kafka "$CLUSTER_BOOTSTRAP" --node "$n" 2>&1)"; then
                say "kafka: broker $n registered after $(since "$t0")"
                phase="in sync"
                continue
            fi
        elif out="$("$PYTHON" "$INFRA/probe.py" kafka "$CLUSTER_BOOTSTRAP" --node "$n" --in-sync 2>&1)"; then
            say "kafka: broker $n back in the ISR of its partitions after $(since "$t0"): $out"
            return 0
        fi
        if [ "${EPOCHREALTIME/[.,]/}" -gt "$deadline" ]; then
            die "kafka: broker $n not $phase within ${TIMEOUT}s (it is left running): $out"
        fi
        ticks=$(( ticks + 1 ))
        if [ $(( ticks % 4 )) = 0 ]; then dot; fi
        sleep 0.25
    done
}

start_broker() {  # N, after select_node N
    local pid t0
    t0=$(now_us)
    if [ ! -f "$KAFKA_PROPS" ] || [ ! -f "$KAFKA_DATA/meta.properties" ]; then
        die "kafka: broker $1 has no configuration or storage in $KAFKA_REL;" \
            "start the cluster with \`infra/stack.sh up --brokers $CLUSTER_SIZE\`"
    fi
    if pid="$(kafka_pid)"; then
        say "kafka: broker $1 already running, pid $pid"
    else
        find_java
        start_node "$1"
        pid="$LAUNCHED_PID"
    fi
    wait_broker "$1" "$pid" "$t0"
}

cmd_broker() {  # ACTION N
    local action="$1" n="${2:-}" pid
    if ! [[ "$n" =~ ^[0-9]+$ ]] || [ "$n" -lt 1 ] || [ "$n" -gt "$CLUSTER_SIZE" ]; then
        die "usage: infra/stack.sh $action N, N a broker of the cluster (1 to $CLUSTER_SIZE)"
    fi
    select_node "$n"
    case "$action" in
        broker-pid)
            pid="$(kafka_pid)" || die "kafka: broker $n is not running"
            printf '%s\n' "$pid" ;;
        kill-broker)
            pid="$(kafka_pid)" || die "kafka: broker $n is not running"
            kill -KILL "$pid"
            for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
            alive "$pid" || rm -f "$KAFKA_PIDFILE"
            say "kafka: broker $n killed (SIGKILL, pid $pid); \`infra/stack.sh start-broker $n\` starts it again" ;;
        pause-broker)
            pid="$(kafka_pid)" || die "kafka: broker $n is not running"
            kill -STOP "$pid"
            say "kafka: broker $n paused (SIGSTOP, pid $pid): its connections stay open and nothing answers;" \
                "\`infra/stack.sh resume-broker $n\` resumes it" ;;
        resume-broker)
            pid="$(kafka_pid)" || die "kafka: broker $n is not running"
            kill -CONT "$pid"
            say "kafka: broker $n resumed (SIGCONT, pid $pid)" ;;
        stop-broker|restart-broker)
            lock
            if pid="$(kafka_pid)"; then
                kill -CONT "$pid" 2>/dev/null || true  # a paused broker cannot act on SIGTERM
                stop_pid "$pid" "kafka broker $n"
                rm -f "$KAFKA_PIDFILE"
            else
                say "kafka: broker $n not running"
            fi
            if [ "$action" = restart-broker ]; then start_broker "$n"; fi ;;
        start-broker)
            lock
            start_broker "$n" ;;
    esac
}

# ---------------------------------------------------------------- postgres ---

find_pg_bin() {
    if [ ! -x "$PG_BIN/initdb" ]; then
        apt_install "PostgreSQL 15 server binaries not found in $PG_BIN" postgresql-15
        [ -x "$PG_BIN/initdb" ] || die "no initdb in $PG_BIN; set PG_BIN to the directory of the PostgreSQL 15 server binaries"
    fi
}

find_psql() {
    PSQL=""
    if [ -x "$PG_BIN/psql" ]; then PSQL="$PG_BIN/psql"
    elif command -v psql >/dev/null 2>&1; then PSQL="$(command -v psql)"; fi
}

as_pg() {  # run a command as the PostgreSQL OS user (ourselves unless root)
    if is_root; then
        (cd / && runuser -u "$PG_OS_USER" -- "$@") 9>&-
    else
        "$@" 9>&-
    fi
}

ensure_pg_os_user() {
    is_root || return 0
    id -u "$PG_OS_USER" >/dev/null 2>&1 && return 0
    say "postgres: creating system user '$PG_OS_USER' (PostgreSQL refuses to run as root)"
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin "$PG_OS_USER"
}

pg_locate() {  # set PG_ROOT & co. from an existing .local/pg; fail if there is none
    [ -e "$PG_LINK" ] || [ -L "$PG_LINK" ] || return 1
    PG_ROOT="$(readlink -m "$PG_LINK")"
    PG_DATA="$PG_ROOT/data"
    PG_LOG="$PG_ROOT/postgres.log"
    PG_SOCK="$PG_ROOT/run"
    # unix socket paths are limited to ~107 bytes
    if [ $(( ${#PG_SOCK} + 16 )) -gt 100 ]; then PG_SOCK=/tmp; fi
}

pg_pid() {  # pid of the postmaster of PG_DATA (default: .local/pg), fails if not running
    local pid
    [ -n "$PG_DATA" ] || pg_locate || return 1
    [ -f "$PG_DATA/postmaster.pid" ] || return 1
    pid="$(head -n1 "$PG_DATA/postmaster.pid" 2>/dev/null)" || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    alive "$pid" || return 1
    [[ "$(proc_args "$pid")" == *postgres*"$PG_DATA"* ]] || return 1
    printf '%s\n' "$pid"
}

pg_stop_running() {  # stop the postmaster of PG_DATA (if any) as the OS user
    local pid t0
    pid="$(pg_pid)" || return 0
    t0=$(now_us)
    if ! as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" stop -m fast -w -t "$STOP_TIMEOUT" -s; then
        warn "postgres: fast shutdown did not finish in ${STOP_TIMEOUT}s; stopping immediately"
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" stop -m immediate -w -t 10 -s \
            || { kill -KILL "$pid" 2>/dev/null || true; }
    fi
    say "postgres: stopped (pid $pid, $(since "$t0"))"
}

pg_prepare_root() {
    local target
    mkdir -p "$LOCAL"
    if ! pg_locate; then
        if is_root; then
            mkdir "$PG_LINK"
            chown "$PG_OS_USER:" "$PG_LINK"
            chmod 700 "$PG_LINK"
            if ! as_pg test -w "$PG_LINK" -a -x "$PG_LINK"; then
                # The checkout is below a directory the OS user cannot enter.
                rmdir "$PG_LINK"
                target="$PG_SHARED_PARENT/$(printf '%s' "$ROOT" | sha256sum | cut -c1-16)"
                mkdir -p "$PG_SHARED_PARENT"
                chmod 755 "$PG_SHARED_PARENT"
                if [ -e "$target" ]; then
                    # Left over by an earlier checkout at the same path whose .local/
                    # is gone: stop it if it still runs, and start from scratch.
                    PG_ROOT="$target" PG_DATA="$target/data"
                    say "postgres: discarding stale data in $target from an earlier checkout of $ROOT"
                    pg_stop_running
                    rm -rf "$target"
                fi
                mkdir "$target"
                chown "$PG_OS_USER:" "$target"
                chmod 700 "$target"
                ln -s "$target" "$PG_LINK"
                say "postgres: user '$PG_OS_USER' cannot reach $ROOT; data lives in $target (.local/pg links there)"
            fi
        else
            mkdir -p "$PG_LINK"
        fi
        pg_locate
    fi
    if [ ! -d "$PG_ROOT" ]; then  # dangling link, e.g. /var/tmp was cleaned up
        mkdir -p "$PG_ROOT"
        chmod 700 "$PG_ROOT"
    fi
    if is_root; then chown "$PG_OS_USER:" "$PG_ROOT"; fi
    if [ "$PG_SOCK" != /tmp ]; then as_pg mkdir -p "$PG_SOCK"; fi
}

start_postgres() {
    local t0 ti pid
    t0=$(now_us)
    find_pg_bin
    ensure_pg_os_user
    pg_prepare_root

    if [ ! -f "$PG_DATA/PG_VERSION" ]; then
        ti=$(now_us)
        rm -rf "$PG_DATA"
        local pwfile="$PG_ROOT/.initdb-password"
        printf '%s\n' "$DB_PASSWORD" | as_pg tee "$pwfile" >/dev/null
        as_pg chmod 600 "$pwfile"
        if ! as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U "$DB_USER" --pwfile="$pwfile" \
                --auth-host=scram-sha-256 --auth-local=trust -E UTF8 --locale=C --no-sync \
                >"$PG_ROOT/initdb.log" 2>&1 </dev/null; then
            rm -f "$pwfile"
            tail_log "$PG_ROOT/initdb.log"
            die "postgres: initdb failed"
        fi
        rm -f "$pwfile"
        printf "\n# Local development stack: settings managed by infra/stack.sh\ninclude_if_exists = 'stack.conf'\n" \
            | as_pg tee -a "$PG_DATA/postgresql.conf" >/dev/null
        say "postgres: initialized a new cluster in .local/pg ($(since "$ti"))"
    fi

    # Rewritten on every start so port changes take effect.
    as_pg tee "$PG_DATA/stack.conf" >/dev/null <<EOF
# Generated by infra/stack.sh on every start.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_SOCK'
max_connections = 200
# Disposable development data: trade crash safety for speed.
fsync = off
synchronous_commit = off
full_page_writes = off
EOF

    if [ -f "$PG_DATA/postmaster.pid" ]; then
        say "postgres: removing stale postmaster.pid (its process is gone)"
        rm -f "$PG_DATA/postmaster.pid"
    fi
    # PostgreSQL only checks `kill -0` on the pid in a leftover socket lock file,
    # which also succeeds for an unreaped zombie; drop the lock if its owner is gone.
    local sock_lock="$PG_SOCK/.s.PGSQL.$PG_PORT.lock" lock_pid
    if [ -f "$sock_lock" ]; then
        lock_pid="$(head -n1 "$sock_lock" 2>/dev/null || true)"
        if ! [[ "$lock_pid" =~ ^[0-9]+$ ]] || ! alive "$lock_pid" \
                || [[ "$(proc_args "$lock_pid")" != *postgres* ]]; then
            rm -f "$sock_lock" "${sock_lock%.lock}"
        fi
    fi
    require_free_port "$PG_PORT" "PostgreSQL" STACK_PG_PORT

    if ! as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$TIMEOUT" -s start </dev/null; then
        tail_log "$PG_LOG"
        die "postgres: pg_ctl start failed (log: ${PG_LOG})"
    fi
    pid="$(pg_pid)" || { tail_log "$PG_LOG"; die "postgres: the server exited right after starting (log: $PG_LOG)"; }

    find_psql
    local psql=("$PSQL" -X -q -At -h "$PG_SOCK" -p "$PG_PORT" -U "$DB_USER")
    if [ "$(as_pg "${psql[@]}" -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" != 1 ]; then
        as_pg "${psql[@]}" -d postgres -c "CREATE DATABASE $DB_NAME OWNER $DB_USER" >/dev/null
        say "postgres: created database $DB_NAME"
    fi
    say "postgres: started, pid $pid, 127.0.0.1:$PG_PORT ($(since "$t0"))"
}

probe_pg() {  # URL; psql when available, psycopg otherwise
    local url
    url="$(printf '%s' "$1" | sed -E 's#^postgres(ql)?\+[A-Za-z0-9_]+://#postgresql://#')"
    find_psql
    if [ -n "$PSQL" ]; then
        PGCONNECT_TIMEOUT=3 "$PSQL" -X -w -q -At -d "$url" -c 'SELECT 1' </dev/null >/dev/null
    else
        "$PYTHON" "$INFRA/probe.py" postgres "$url" >/dev/null
    fi
}

# ---------------------------------------------------------------- commands ---

wait_ready() {  # waits for WAIT_KAFKA / WAIT_PG, started at KAFKA_T0 / PG_T0
    local deadline out err_k="" err_p="" ticks=0
    deadline=$(( ${EPOCHREALTIME/[.,]/} + TIMEOUT * 1000000 ))
    while [ "$WAIT_KAFKA" = 1 ] || [ "$WAIT_PG" = 1 ]; do
        if [ "$WAIT_KAFKA" = 1 ]; then
            if out="$(probe_kafka "$KAFKA_EP" 2>&1)"; then
                WAIT_KAFKA=0
                say "kafka: answering at $KAFKA_EP after $(since "$KAFKA_T0"): $out"
            else
                err_k="$out"
                if [ -n "${KAFKA_WATCH_PID:-}" ] && ! alive "$KAFKA_WATCH_PID"; then
                    rm -f "$KAFKA_PIDFILE"
                    tail_log "$KAFKA_LOGS/kafka.out"
                    tail_log "$KAFKA_LOGS/server.log"
                    die "kafka: the broker process exited (logs: $KAFKA_REL/logs/)"
                fi
                cluster_exited
            fi
        fi
        if [ "$WAIT_PG" = 1 ]; then
            if out="$(probe_pg "$DB_URL" 2>&1)"; then
                WAIT_PG=0
                say "postgres: answering SQL at $(show_url "$DB_URL") after $(since "$PG_T0")"
            else
                err_p="$out"
                if [ "$PG_EXTERNAL" = 0 ] && ! pg_pid >/dev/null; then
                    tail_log "$PG_LOG"
                    die "postgres: the server exited (log: $PG_LOG)"
                fi
            fi
        fi
        [ "$WAIT_KAFKA" = 1 ] || [ "$WAIT_PG" = 1 ] || break
        if [ "${EPOCHREALTIME/[.,]/}" -gt "$deadline" ]; then
            if [ "$WAIT_KAFKA" = 1 ]; then
                warn "kafka at $KAFKA_EP did not answer within ${TIMEOUT}s: $err_k"
                if [ "$KAFKA_EXTERNAL" = 0 ] && [ "$CLUSTER" = 1 ]; then
                    cluster_logs_hint
                elif [ "$KAFKA_EXTERNAL" = 0 ]; then
                    tail_log "$KAFKA_LOGS/kafka.out"
                    tail_log "$KAFKA_LOGS/server.log"
                    warn "kafka logs: $KAFKA_REL/logs/ (it is left running; \`infra/stack.sh down$SECURE_FLAG\` stops it)"
                fi
            fi
            if [ "$WAIT_PG" = 1 ]; then
                warn "postgres at $(show_url "$DB_URL") did not answer within ${TIMEOUT}s: $err_p"
                if [ "$PG_EXTERNAL" = 0 ]; then
                    tail_log "$PG_LOG"
                    warn "postgres log: $PG_LOG"
                fi
            fi
            die "the stack did not come up"
        fi
        ticks=$(( ticks + 1 ))
        if [ $(( ticks % 4 )) = 0 ]; then dot; fi
        sleep 0.25
    done
    end_dots
}

cmd_up() {
    local t0 pid
    t0=$(now_us)
    lock
    command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found; it runs the Kafka readiness probe (set PYTHON)"
    resolve_endpoints
    KAFKA_WATCH_PID="" WAIT_KAFKA=1 WAIT_PG=1 CLUSTER_WATCH=()
    if [ "$KAFKA_EXTERNAL" = 1 ] && [ "$PG_EXTERNAL" = 1 ]; then
        say "using the external endpoints from the environment; starting nothing"
    fi

    KAFKA_T0=$(now_us)
    if [ "$KAFKA_EXTERNAL" = 1 ]; then
        say "kafka: using external endpoint KAFKA_BOOTSTRAP_SERVERS=$KAFKA_EP"
    elif [ "$CLUSTER" = 1 ]; then
        start_cluster
    elif pid="$(kafka_pid)"; then
        KAFKA_WATCH_PID="$pid"
        say "kafka: already running, pid $pid"
    else
        if [ -f "$KAFKA_PIDFILE" ]; then
            say "kafka: removing stale pid file (pid $(<"$KAFKA_PIDFILE") is not our broker)"
            rm -f "$KAFKA_PIDFILE"
        fi
        start_kafka
    fi

    PG_T0=$(now_us)
    pg_locate || true
    if [ "$KAFKA_ONLY" = 1 ]; then
        WAIT_PG=0
    elif [ "$PG_EXTERNAL" = 1 ]; then
        say "postgres: using external endpoint DATABASE_URL=$(show_url "$DB_URL")"
    elif pid="$(pg_pid)"; then
        say "postgres: already running, pid $pid"
    else
        start_postgres
    fi

    wait_ready
    local summary="KAFKA_BOOTSTRAP_SERVERS=$KAFKA_EP"
    [ "$CLUSTER" = 0 ] || summary+=" ORCHESTRATOR_REPLICATION_FACTOR=$CLUSTER_SIZE"
    [ "$KAFKA_ONLY" = 1 ] || summary+=" DATABASE_URL=$(show_url "$DB_URL")"
    say "up in $(since "$t0"): $summary"
}

stop_kafka() {
    local pid
    if pid="$(kafka_pid)"; then
        stop_pid "$pid" kafka
        rm -f "$KAFKA_PIDFILE"
    elif [ -f "$KAFKA_PIDFILE" ]; then
        say "kafka: not running (removed stale pid file)"
        rm -f "$KAFKA_PIDFILE"
    else
        say "kafka: not running"
    fi
}

cmd_down() {
    lock
    if [ "$CLUSTER" = 1 ]; then stop_cluster; else stop_kafka; fi
    # PostgreSQL serves both profiles: the secure one leaves it to the plaintext `down`.
    [ "$SECURE" = 0 ] || return 0
    # The plaintext `down` stops a cluster started beside the single broker too.
    [ "$CLUSTER" = 1 ] || (stop_cluster quiet)  # in a subshell: it points KAFKA_* at each node
    [ "$KAFKA_ONLY" = 0 ] || return 0
    if pg_locate && pg_pid >/dev/null; then
        pg_stop_running
    else
        say "postgres: not running"
    fi
}

cmd_status() {
    local pid out rc=0
    resolve_endpoints
    pg_locate || true
    if [ "$KAFKA_EXTERNAL" = 1 ]; then
        if out="$(probe_kafka "$KAFKA_EP" 2>&1)"; then say "kafka:    external $KAFKA_EP, answering: $out"
        else say "kafka:    external $KAFKA_EP, NOT answering: $out"; rc=3; fi
    elif [ "$CLUSTER" = 1 ]; then
        cluster_status || rc=3
    elif pid="$(kafka_pid)"; then
        if out="$(probe_kafka "$KAFKA_EP" 2>&1)"; then say "kafka:    running, pid $pid, $KAFKA_EP, answering: $out"
        else say "kafka:    running, pid $pid, $KAFKA_EP, NOT answering yet: $out"; rc=3; fi
    else
        say "kafka:    stopped"; rc=3
    fi
    [ "$KAFKA_ONLY" = 0 ] || return "$rc"
    if [ "$PG_EXTERNAL" = 1 ]; then
        if out="$(probe_pg "$DB_URL" 2>&1)"; then say "postgres: external $(show_url "$DB_URL"), answering"
        else say "postgres: external $(show_url "$DB_URL"), NOT answering: $out"; rc=3; fi
    elif pid="$(pg_pid)"; then
        if out="$(probe_pg "$DB_URL" 2>&1)"; then say "postgres: running, pid $pid, 127.0.0.1:$PG_PORT, answering, data in $PG_DATA"
        else say "postgres: running, pid $pid, 127.0.0.1:$PG_PORT, NOT answering: $out"; rc=3; fi
    else
        say "postgres: stopped"; rc=3
    fi
    return "$rc"
}

cmd_env() {
    resolve_endpoints
    if [ "$SECURE" = 1 ] && [ "$KAFKA_EXTERNAL" = 0 ]; then secure_env "$KAFKA_EP"
    else printf 'export KAFKA_BOOTSTRAP_SERVERS=%s\n' "$(shell_quote "$KAFKA_EP")"; fi
    # The secure profile checks who speaks: agents' records and decisions must be signed (docs/operations.md).
    [ "$SECURE" = 0 ] || printf 'export IDENTITY_MODE=verify\n'
    [ "$CLUSTER" = 0 ] || printf 'export ORCHESTRATOR_REPLICATION_FACTOR=%s\n' "$CLUSTER_SIZE"
    printf 'export DATABASE_URL=%s\n' "$(shell_quote "$DB_URL")"
}

cmd_logs() {
    local which=all follow=0 arg files=() nodes=() n
    for arg in "$@"; do
        case "$arg" in
            -f|--follow) follow=1 ;;
            kafka|postgres|all) which="$arg" ;;
            [1-9]) if [ "$CLUSTER" = 1 ] && [ "$arg" -le "$CLUSTER_SIZE" ]; then which=kafka nodes+=("$arg")
                   else die "usage: infra/stack.sh logs --brokers $CLUSTER_SIZE [kafka|postgres|N] [-f]"; fi ;;
            *) die "usage: infra/stack.sh logs [kafka|postgres] [-f] (--brokers $CLUSTER_SIZE: [kafka|postgres|N])" ;;
        esac
    done
    if [ "$which" != postgres ] && [ "$CLUSTER" = 1 ]; then
        [ "${#nodes[@]}" -gt 0 ] || mapfile -t nodes < <(cluster_nodes)
        for n in "${nodes[@]}"; do
            select_node "$n"
            files+=("$KAFKA_LOGS/server.log")
            [ -s "$KAFKA_LOGS/kafka.out" ] && files+=("$KAFKA_LOGS/kafka.out")
        done
    elif [ "$which" != postgres ]; then
        files+=("$KAFKA_LOGS/server.log")
        [ -s "$KAFKA_LOGS/kafka.out" ] && files+=("$KAFKA_LOGS/kafka.out")
    fi
    if [ "$which" != kafka ] && pg_locate; then files+=("$PG_LOG"); fi
    [ "${#files[@]}" -gt 0 ] || die "no logs yet (run infra/stack.sh up first)"
    if [ "$follow" = 1 ]; then
        exec tail -n 20 -F "${files[@]}"
    fi
    tail -n "${STACK_LOG_LINES:-40}" "${files[@]}" 2>/dev/null || true
}

cmd_prepare() {  # [KEY=VALUE...]: extra broker properties
    EXTRA_PROPS=("$@")
    prepare_kafka
    say "kafka: $KAFKA_PROPS ready; start it with: java -cp '$KAFKA_LIBS/*' kafka.Kafka $KAFKA_PROPS"
}

cmd_clean() {
    lock
    if [ "$CLUSTER" = 1 ]; then
        stop_cluster
        rm -rf "$CLUSTER_DIR"
        say "kafka: deleted the cluster's data and logs (${CLUSTER_DIR#"$ROOT"/}; jars kept in .local/kafka/libs)"
        return 0
    fi
    if [ "$SECURE" = 1 ]; then
        stop_kafka
        rm -rf "$KAFKA_DIR"
        say "kafka: deleted the secure broker's data, logs, certificates and passwords ($KAFKA_REL)"
        return 0
    fi
    cmd_down
    rm -rf "$KAFKA_DATA" "$KAFKA_LOGS" "$KAFKA_PROPS" "$KAFKA_PIDFILE" "$KAFKA_CLUSTER_ID_FILE" "$KAFKA_LIBS.tmp"
    say "kafka: deleted local data and logs (jars kept in .local/kafka/libs)"
    if [ -d "$CLUSTER_DIR" ]; then
        rm -rf "$CLUSTER_DIR"
        say "kafka: deleted the cluster's data and logs (${CLUSTER_DIR#"$ROOT"/})"
    fi
    if [ -L "$PG_LINK" ]; then
        local target
        target="$(readlink -m "$PG_LINK")"
        if [[ "$target" == "$PG_SHARED_PARENT"/* ]]; then rm -rf "$target"
        else warn "postgres: .local/pg points to $target, outside $PG_SHARED_PARENT; removing only the link"; fi
        rm -f "$PG_LINK"
        say "postgres: deleted local data ($target)"
    elif [ -e "$PG_LINK" ]; then
        rm -rf "$PG_LINK"
        say "postgres: deleted local data"
    fi
}

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}

main() {
    local cmd="${1:-}"
    [ $# -gt 0 ] && shift
    case "$cmd" in
        up)     cmd_up ;;
        down)   cmd_down ;;
        status) cmd_status ;;
        env)    cmd_env ;;
        logs)   cmd_logs "$@" ;;
        prepare) cmd_prepare "$@" ;;
        clean)  cmd_clean ;;
        broker-pid|kill-broker|pause-broker|resume-broker|stop-broker|start-broker|restart-broker)
            cmd_broker "$cmd" "$@" ;;
        -h|--help|help) usage ;;
        *) usage >&2; exit 2 ;;
    esac
}

main "$@"
