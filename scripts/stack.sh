#!/usr/bin/env bash
# Local Switchboard stack without Docker: one Apache Kafka broker (KRaft, broker+controller
# in one JVM) and Apicurio Registry, both fetched from Maven Central with mvn and run with
# the machine's Java on 127.0.0.1 only.
#
#   scripts/stack.sh fetch       download pinned artifacts into $SB_CACHE (idempotent)
#   scripts/stack.sh up          fetch if needed, start Kafka + registry, wait until ready
#   scripts/stack.sh down        stop both (SIGTERM, SIGKILL after 30 s)
#   scripts/stack.sh status      what runs (exit 0 only when both run)
#   scripts/stack.sh kafka-up | kafka-down    only the broker (outage tests)
#   scripts/stack.sh kafka-scram-up  only a broker whose client listener is SASL_PLAINTEXT
#       with SCRAM-SHA-256/512; the user $SB_SCRAM_USER (switchboard) with the password in
#       $SB_SCRAM_PASSWORD (required) is created when the data dir is formatted. Meant for a
#       private SB_STACK_DIR (the security test); `kafka-down` stops it.
#   scripts/stack.sh clean       down, then delete the state dir (not the download cache)
#   scripts/stack.sh kafka-cli CLASS ARGS...  run a Kafka CLI class, e.g.
#       org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:9092 --list
#
# Environment (each has a default, so two stacks can run side by side):
#   SB_CACHE (~/.cache/switchboard)  SB_STACK_DIR ($SB_CACHE/stack)  SB_KAFKA_PORT (9092)
#   SB_CONTROLLER_PORT (9093)  SB_REGISTRY_PORT (8081)  SB_STACK_TIMEOUT (90 s)  SB_JAVA (java)
#   SB_SCRAM_USER, SB_SCRAM_PASSWORD (kafka-scram-up only)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KAFKA_VERSION=4.1.1
# Apicurio 3.1.x and 3.2.x apps are not on Maven Central (only their parent POMs); 3.3.x
# is, but is built for Java 21+. 3.0.9 is the newest one there that runs on Java 17.
REGISTRY_VERSION=3.0.9

CACHE=${SB_CACHE:-$HOME/.cache/switchboard}
STATE=${SB_STACK_DIR:-$CACHE/stack}
KAFKA_PORT=${SB_KAFKA_PORT:-9092}
CONTROLLER_PORT=${SB_CONTROLLER_PORT:-9093}
REGISTRY_PORT=${SB_REGISTRY_PORT:-8081}
TIMEOUT=${SB_STACK_TIMEOUT:-90}
JAVA=${SB_JAVA:-java}

POM=$HERE/stack/kafka-pom.xml
KAFKA_LIBS=$CACHE/kafka-$KAFKA_VERSION/libs
REGISTRY_HOME=$CACHE/apicurio-$REGISTRY_VERSION
REGISTRY_JAR=$REGISTRY_HOME/apicurio-registry-app-$REGISTRY_VERSION-runner.jar
REGISTRY_URL=http://127.0.0.1:$REGISTRY_PORT

log() { printf 'stack: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
secs_since() { local ms=$(($(now_ms) - $1)); printf '%d.%d s' $((ms / 1000)) $((ms % 1000 / 100)); }

# Dies with the tail of every non-empty *.log in $2, where the reason usually is.
fail_with_log() {
  local f
  log "error: $1"
  for f in "$2"/*.log; do
    [[ -s $f ]] && { log "--- last lines of $f"; tail -n 20 "$f" >&2; }
  done
  exit 1
}

# ---------------------------------------------------------------- fetch
fetch() {
  mkdir -p "$CACHE"
  # Parallel test runs share one cache: only one of them may download at a time.
  exec 8>"$CACHE/.fetch.lock"
  flock 8
  # The Kafka marker holds a hash of the POM, so editing a pinned version refetches.
  local stamp mvn=(mvn -B -f "$POM" "-Dkafka.version=$KAFKA_VERSION")
  stamp=$(sha256sum <"$POM" | cut -d' ' -f1)
  if [[ $(cat "$KAFKA_LIBS/.complete" 2>/dev/null) != "$stamp" ]]; then
    log "fetching Kafka $KAFKA_VERSION jars into $KAFKA_LIBS"
    rm -rf "$KAFKA_LIBS"
    "${mvn[@]}" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS" \
      >"$CACHE/mvn.log" 2>&1 || fail_with_log "mvn could not fetch Kafka" "$CACHE"
    echo "$stamp" >"$KAFKA_LIBS/.complete"
  fi
  if [[ ! -f $REGISTRY_HOME/.complete ]]; then
    log "fetching Apicurio Registry $REGISTRY_VERSION into $REGISTRY_HOME"
    rm -rf "$REGISTRY_HOME" && mkdir -p "$REGISTRY_HOME"
    "${mvn[@]}" dependency:copy -DoutputDirectory="$REGISTRY_HOME" \
      "-Dartifact=io.apicurio:apicurio-registry-app:$REGISTRY_VERSION:tar.gz:all" \
      >"$CACHE/mvn.log" 2>&1 || fail_with_log "mvn could not fetch Apicurio Registry" "$CACHE"
    tar -xzf "$REGISTRY_HOME"/apicurio-registry-app-*-all.tar.gz -C "$REGISTRY_HOME"
    rm -f "$REGISTRY_HOME"/apicurio-registry-app-*-all.tar.gz # ~/.m2 keeps a copy
    [[ -f $REGISTRY_JAR ]] || die "unexpected layout of the Apicurio archive: no $REGISTRY_JAR"
    touch "$REGISTRY_HOME/.complete"
  fi
  exec 8>&-
}

# ---------------------------------------------------------------- processes
# Every JVM we start carries -Dsb.stack=<state dir>, so a stale pid file whose pid now
# belongs to another process (or to another stack's JVM) is never taken for ours.
running_pid() {
  local file=$STATE/$1.pid pid
  [[ -f $file ]] || return 1
  pid=$(<"$file")
  tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "-Dsb.stack=$STATE " && echo "$pid" && return
  rm -f "$file" && return 1
}

check_port_free() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null || return 0
  local who
  who=$(ss -ltnpH "sport = :$1" 2>/dev/null | grep -o 'users:.*' | head -1 || true)
  die "port $1 on 127.0.0.1 is taken by something else ${who:+($who) }- stop it or set $2"
}

# Starts "$@" in its own session (a Ctrl-C in this terminal must not reach it), without
# stdin and without our lock fd (or the lock would live as long as the JVM). exec keeps
# the subshell's pid, so $! is the JVM itself.
spawn() {
  local name=$1 out=$2 && shift 2
  (cd "$STATE" && exec 9>&- && exec setsid "$@" </dev/null >>"$out" 2>&1) &
  local pid=$! i=0
  echo "$pid" >"$STATE/$name.pid"
  # Until the subshell has exec'd, its cmdline is bash's and running_pid would take the
  # pid for someone else's: on a loaded machine that read as "exited during startup".
  until tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "-Dsb.stack=$STATE "; do
    kill -0 "$pid" 2>/dev/null && ((i++ < 200)) || break
    sleep 0.05
  done
  log "$name starting (pid $pid), logs in $(dirname "$out")"
}

# Polls "$@" until it succeeds; gives up when the process dies or after $TIMEOUT seconds.
wait_until() {
  local name=$1 logs=$2 pid deadline=$((SECONDS + TIMEOUT)) && shift 2
  until "$@" >/dev/null 2>&1; do
    pid=$(running_pid "$name") || fail_with_log "$name exited during startup" "$logs"
    ((SECONDS < deadline)) ||
      fail_with_log "$name (pid $pid) not ready after ${TIMEOUT}s; left running, 'down' stops it" "$logs"
    sleep 0.5
  done
}

stop() {
  local name=$1 pid i=0
  pid=$(running_pid "$name") || { log "$name is not running"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null && ((i++ < 300)); do sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name (pid $pid) did not stop within 30 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$STATE/$name.pid"
  log "$name stopped"
}

# ---------------------------------------------------------------- Kafka
kafka_java() { "$JAVA" -cp "$KAFKA_LIBS/*" "$@"; }

# The broker's client listener and what it needs: plaintext, or SASL (SCRAM) for
# `kafka-scram-up`. The broker authenticates to itself as `broker` with a random password
# made when the data dir is first used (kept in the state dir, readable only by its owner).
listener_properties() {
  if [[ ${KAFKA_SCRAM:-} != yes ]]; then
    cat <<EOF
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
EOF
    return
  fi
  cat <<EOF
listeners=SASL_PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=SASL_PLAINTEXT://127.0.0.1:$KAFKA_PORT
listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=SASL_PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="$(<"$1")";
EOF
}

# Options of `kafka-storage format` that create the SCRAM users of a new KRaft cluster.
scram_users() {
  [[ ${KAFKA_SCRAM:-} == yes ]] || return 0
  local user=${SB_SCRAM_USER:-switchboard} m
  for m in SCRAM-SHA-256 SCRAM-SHA-512; do
    printf '%s\n' --add-scram "$m=[name=$user,password=$SB_SCRAM_PASSWORD]"
  done
  printf '%s\n' --add-scram "SCRAM-SHA-512=[name=broker,password=$(<"$1")]"
}

kafka_start() {
  local dir=$STATE/kafka pid id broker_pw
  if pid=$(running_pid kafka); then
    grep -qF "PLAINTEXT://127.0.0.1:$KAFKA_PORT," "$dir/server.properties" ||
      die "the broker of $STATE (pid $pid) uses other ports; set another SB_STACK_DIR"
    log "kafka already running (pid $pid)"
    return 0
  fi
  check_port_free "$KAFKA_PORT" SB_KAFKA_PORT
  check_port_free "$CONTROLLER_PORT" SB_CONTROLLER_PORT
  mkdir -p "$dir/data"
  broker_pw=$dir/broker-password
  if [[ ${KAFKA_SCRAM:-} == yes ]]; then
    [[ -n ${SB_SCRAM_PASSWORD:-} ]] || die "kafka-scram-up needs SB_SCRAM_PASSWORD"
    [[ -s $broker_pw ]] || (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$broker_pw")
  fi
  # Written on every start so port overrides apply; the data dir keeps topics and offsets.
  (umask 077 && cat >"$dir/server.properties") <<EOF
process.roles=broker,controller
node.id=1
$(listener_properties "$broker_pw")
controller.listener.names=CONTROLLER
controller.quorum.bootstrap.servers=127.0.0.1:$CONTROLLER_PORT
log.dirs=$dir/data
num.partitions=3
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
# One node, so one replica everywhere. Fewer partitions than the default 50 make the
# first consumer group and the first transaction on a new broker much faster.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
EOF
  # Format only a new data dir: formatting again would mean a new cluster and no data.
  if [[ ! -f $dir/data/meta.properties ]]; then
    # A random 16-byte id in Kafka's base64url form; Kafka refuses ids starting with '-'.
    until id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=') && [[ $id != -* ]]; do :; done
    local scram=() && mapfile -t scram < <(scram_users "$broker_pw")
    kafka_java kafka.tools.StorageTool format --standalone -t "$id" -c "$dir/server.properties" \
      "${scram[@]}" >"$dir/format.log" 2>&1 || fail_with_log "formatting $dir/data failed" "$dir"
  fi
  # A full `make test` creates thousands of topics on one broker; 512 MB ran out of heap
  # at about 4,900 (OutOfMemoryError in the controller, topic creation timing out after).
  spawn kafka "$dir/stdout.log" "$JAVA" -Xms256m -Xmx2g -Djava.awt.headless=true \
    "-Dsb.stack=$STATE" "-Dkafka.logs.dir=$dir" "-Dlog4j2.configurationFile=$HERE/stack/log4j2.properties" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$dir/server.properties"
}

# A real Kafka protocol round trip with no JVM to start, so waiting and `up` on a running
# stack stay fast: ApiVersions v0 over bash's /dev/tcp. Request: size 12, api_key 18,
# version 0, correlation id 7, client id "sb". A serving broker answers: size, 7, error 0.
kafka_answers() {
  local reply
  reply=$(exec 2>/dev/null 3<>"/dev/tcp/127.0.0.1/$KAFKA_PORT" &&
    printf '\x00\x00\x00\x0c\x00\x12\x00\x00\x00\x00\x00\x07\x00\x02sb' >&3 &&
    timeout 2 head -c 10 <&3 | od -An -tx1 | tr -d ' \n') || return 1
  [[ ${reply:8} == 000000070000 ]]
}

# ---------------------------------------------------------------- registry
registry_start() {
  local dir=$STATE/registry pid
  if pid=$(running_pid registry); then
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "-Dquarkus.http.port=$REGISTRY_PORT " ||
      die "the registry of $STATE (pid $pid) uses another port; set another SB_STACK_DIR"
    log "registry already running (pid $pid)"
    return 0
  fi
  check_port_free "$REGISTRY_PORT" SB_REGISTRY_PORT
  mkdir -p "$dir"
  [[ -f $dir/db.mv.db ]] || REGISTRY_NEW_DB=1
  # H2 in a file under the state dir, so schema ids survive restarts as Kafka data does.
  # Canonical hash: the same schema with other whitespace or key order keeps its id.
  # rules.global.compatibility: BACKWARD for every subject that has no rule of its own.
  spawn registry "$dir/registry.log" "$JAVA" -Xms128m -Xmx512m "-Dsb.stack=$STATE" \
    -Dquarkus.http.host=127.0.0.1 "-Dquarkus.http.port=$REGISTRY_PORT" \
    -Dapicurio.storage.kind=sql -Dapicurio.storage.sql.kind=h2 \
    "-Dapicurio.datasource.url=jdbc:h2:file:$dir/db" \
    -Dapicurio.datasource.jdbc.initial-size=2 -Dapicurio.datasource.jdbc.min-size=2 \
    -Dapicurio.ccompat.use-canonical-hash=true \
    -Dapicurio.rules.global.compatibility=BACKWARD \
    -jar "$REGISTRY_JAR"
}

registry_ready() { curl -fs --max-time 2 "$REGISTRY_URL/health/ready"; }

registry_wait() {
  wait_until registry "$STATE/registry" registry_ready
  # The property is enforced, but 3.0.9's ccompat GET /config shows only a stored rule,
  # so store it once in a new database (a user's later change is then kept).
  [[ -z ${REGISTRY_NEW_DB:-} ]] || curl -fs -o /dev/null -X PUT -H 'Content-Type: application/json' \
    -d '{"compatibility":"BACKWARD"}' "$REGISTRY_URL/apis/ccompat/v7/config" ||
    log "warning: could not store the global BACKWARD rule (it is still enforced)"
}

# ---------------------------------------------------------------- commands
up() {
  local t0 what=$1 && t0=$(now_ms)
  fetch
  # Neither depends on the other, so both start before either is waited for.
  kafka_start
  [[ $what == kafka ]] || registry_start
  wait_until kafka "$STATE/kafka" kafka_answers
  [[ $what == kafka ]] || registry_wait
  log "Kafka     127.0.0.1:$KAFKA_PORT"
  [[ $what == kafka ]] || log "registry  $REGISTRY_URL/apis/ccompat/v7"
  log "ready in $(secs_since "$t0") (state in $STATE)"
}

status() {
  local rc=0 pid
  if pid=$(running_pid kafka); then
    log "kafka     running, pid $pid, 127.0.0.1:$KAFKA_PORT$(kafka_answers || echo ' (not answering yet)')"
  else log "kafka     not running" && rc=3; fi
  if pid=$(running_pid registry); then
    log "registry  running, pid $pid, $REGISTRY_URL/apis/ccompat/v7$(registry_ready >/dev/null || echo ' (not ready)')"
  else log "registry  not running" && rc=3; fi
  return $rc
}

clean() {
  stop registry && stop kafka
  # Guard the rm against a surprising SB_STACK_DIR.
  case $(realpath -m "$STATE") in
    / | "$(realpath -m "$HOME")" | "$(realpath -m "$CACHE")") die "refusing to delete $STATE" ;;
  esac
  rm -rf "$STATE"
  log "deleted $STATE"
}

cmd=${1:-help}
case $cmd in up | kafka-up | kafka-scram-up | down | kafka-down | clean)
  # One command at a time per stack, so parallel test runs cannot start two brokers.
  mkdir -p "$STATE"
  exec 9>"$STATE/.lock"
  flock 9
  ;;
esac
case $cmd in
  fetch) t0=$(now_ms) && fetch && log "artifacts in $CACHE ($(secs_since "$t0"))" ;;
  up) up all ;;
  kafka-up) up kafka ;;
  kafka-scram-up) KAFKA_SCRAM=yes up kafka ;;
  down) stop registry && stop kafka ;;
  kafka-down) stop kafka ;;
  status) status ;;
  clean) clean ;;
  kafka-cli) shift && { [[ -f $KAFKA_LIBS/.complete ]] || fetch; } && kafka_java "$@" ;;
  *) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//' >&2 && exit 2 ;;
esac
