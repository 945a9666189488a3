#!/usr/bin/env bash
# Ingest throughput for signed 2 KB Shopify order webhooks (acks=all, each with its own
# delivery ID), read against two ceilings measured in the same run on the same broker:
#   1. a bare HTTP handler that only answers 200 (this machine's HTTP ceiling),
#   2. Kafka's own ProducerPerformance with 2 KB records and acks=all (the broker ceiling).
# Load comes from vegeta (a real load generator): first as fast as it goes, then at half of
# the maximum ingest rate for p50/p99 latency.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DURATION=${SB_BENCH_DURATION:-10s}
WORKERS=${SB_BENCH_WORKERS:-64}
BIN_DIR=${SB_CACHE:-$HOME/.cache/switchboard}/bin
VEGETA=$BIN_DIR/vegeta
if [[ ! -x $VEGETA ]]; then
  echo "installing vegeta (Go module proxy)..."
  GOBIN=$BIN_DIR go install github.com/tsenart/vegeta/v12@v12.13.0
fi
scripts/stack.sh up >/dev/null

cargo build -q --release -p switchboard-ingest-webhook -p switchboard-tests --bin switchboard-ingest-webhook --bin bench-bare-http
TARGET=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release
WORK=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$WORK"' EXIT

PREFIX="bench$(date +%s)"
SECRET=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
export SHOP_WEBHOOK_SECRET=$SECRET
cat >"$WORK/ingest.yaml" <<YAML
kafka: {bootstrap_servers: "127.0.0.1:9092", topic_prefix: "$PREFIX"}
registry: {url: "http://127.0.0.1:8081/apis/ccompat/v7"}
connections:
  shop: {type: shopify, shop_domain: acme.myshopify.com, api_version: "2025-01", webhook_secret: "\${env:SHOP_WEBHOOK_SECRET}"}
ingest: {listen: "127.0.0.1:18081"}
YAML
RUST_LOG=warn "$TARGET/switchboard-ingest-webhook" --config "$WORK/ingest.yaml" >"$WORK/ingest.log" 2>&1 & pids+=($!)
"$TARGET/bench-bare-http" 127.0.0.1:18080 & pids+=($!)
ingest_pid=${pids[0]}
for _ in $(seq 1 120); do curl -fs http://127.0.0.1:18081/readyz >/dev/null 2>&1 && break; sleep 0.5; done
rss() { awk -v f="$2:" '$1 == f { printf "%.1f MB", $2 / 1024 }' "/proc/$1/status"; } # pid field
idle_rss=$(rss "$ingest_pid" VmRSS)

# Targets: one signed 2 KB order body, a unique X-Shopify-Webhook-Id per request.
python3 scripts/bench_targets.py "$SECRET" 400000 >"$WORK/targets.json"

attack() { # url rate -> vegeta JSON report; every run gets its own delivery IDs, or
  # ingest would answer the second run from its dedupe state without touching Kafka.
  local run
  run=$(date +%s%N)
  # vegeta stops reading when the duration is up; sed's SIGPIPE then is expected.
  { sed "s#__URL__#$1#; s#\"bench-#\"bench-$run-#" "$WORK/targets.json" || true; } |
    "$VEGETA" attack -format=json -lazy -rate="$2" -max-workers="$WORKERS" -workers=16 -duration="$DURATION" |
    "$VEGETA" report -type=json
}
summary() { python3 -c '
import json, sys
r = json.load(sys.stdin)
codes = r["status_codes"]
lat = r["latencies"]
print("%8.0f req/s ok  p50 %6.2f ms  p99 %6.2f ms  (%d/%d answered 200, codes %s)" % (
    r["throughput"], lat["50th"] / 1e6, lat["99th"] / 1e6, codes.get("200", 0), r["requests"], codes))'; }

echo "== max rate (vegeta -rate=0, $WORKERS workers, $DURATION)"
bare_max=$(attack http://127.0.0.1:18080/webhooks/shop 0); echo "bare HTTP handler : $(echo "$bare_max" | summary)"
ingest_max=$(attack http://127.0.0.1:18081/webhooks/shop 0); echo "ingest-webhook    : $(echo "$ingest_max" | summary)"
half=$(echo "$ingest_max" | python3 -c 'import json,sys; print(max(1,int(json.load(sys.stdin)["throughput"]/2)))')
echo "== at half of ingest's max ($half/s)"
echo "bare HTTP handler : $(attack http://127.0.0.1:18080/webhooks/shop "$half/s" | summary)"
echo "ingest-webhook    : $(attack http://127.0.0.1:18081/webhooks/shop "$half/s" | summary)"

echo "== Kafka ProducerPerformance (2048-byte records, acks=all, idempotent)"
scripts/stack.sh kafka-cli org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:9092 --create --topic "$PREFIX.perf" --partitions 3 >/dev/null
scripts/stack.sh kafka-cli org.apache.kafka.tools.ProducerPerformance --topic "$PREFIX.perf" \
  --num-records 300000 --record-size 2048 --throughput -1 \
  --producer-props bootstrap.servers=127.0.0.1:9092 acks=all enable.idempotence=true linger.ms=5 compression.type=zstd 2>/dev/null | tail -1

echo "== ingest-webhook memory (release build)"
echo "idle, ready           : $idle_rss"
echo "peak under the runs   : $(rss "$ingest_pid" VmHWM)"
# A clean shutdown: SIGTERM drains and exits 0 without an ERROR line.
kill -TERM "$ingest_pid"
status=0
wait "$ingest_pid" || status=$?
echo "SIGTERM: exit status $status, ERROR lines logged: $(grep -c ERROR "$WORK/ingest.log" || true)"
