#!/usr/bin/env bash
# `make run`: the whole demo on this machine. Starts the local stack (unless it already
# runs), registers the schemas, builds and starts the services with config/demo.yaml and the
# sandbox sending a steady stream of Shopify customer webhooks, then prints where to look.
# Ctrl-C stops everything this script started.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

REGISTRY=http://127.0.0.1:8081/apis/ccompat/v7
LOGS=${SB_DEMO_LOGS:-$HOME/.cache/switchboard/demo-logs}
mkdir -p "$LOGS"

started_stack=no
scripts/stack.sh status >/dev/null 2>&1 || started_stack=yes
scripts/stack.sh up

# The emulators start empty each run, so the demo's Kafka state starts empty too: an earlier
# run's links in sb.xref would point at persons this run's Pipedrive sandbox never had.
topics=(scripts/stack.sh kafka-cli org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:9092)
demo_topics() { "${topics[@]}" --list 2>/dev/null | grep -c '^sb\.' || true; }
earlier=$(demo_topics)
if (( earlier > 0 )); then
  "${topics[@]}" --delete --topic 'sb\..*' >/dev/null
  for _ in $(seq 1 60); do (( $(demo_topics) == 0 )) && break; sleep 1; done
  echo "earlier demo state removed ($earlier sb.* topics)"
fi

echo "building services (debug profile)..."
cargo build -q --bins -p switchboard-ingest-webhook -p switchboard-ingest-poller -p switchboard-transformer -p switchboard-sink -p switchboard-console -p switchboard-sandbox
BIN=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug

# Schemas, under TopicNameStrategy subjects; the services would register them on first
# use, this makes them visible before the first event.
register() {
  python3 -c 'import json,sys; print(json.dumps({"schema": open(sys.argv[1]).read()}))' "$2" |
    curl -fsS -X POST -H 'Content-Type: application/vnd.schemaregistry.v1+json' \
      --data @- "$REGISTRY/subjects/$1/versions" >/dev/null
  echo "schema registered: $1"
}
register sb.raw.shop.customers-value schemas/raw/change-event.v1.avsc
register sb.canonical.contact-value schemas/canonical/contact.v1.avsc

# Fresh demo secrets for this run only: never written to disk or printed.
random() { head -c 24 /dev/urandom | base64 | tr -d '/+='; }
SHOP_WEBHOOK_SECRET=$(random) SHOP_ACCESS_TOKEN=$(random) CRM_API_TOKEN=$(random)
EXACT_CLIENT_SECRET=$(random) TELEGRAM_BOT_TOKEN="4242:$(random)" SB_SECRETS_KEY=$(head -c 32 /dev/urandom | base64)
export SHOP_WEBHOOK_SECRET SHOP_ACCESS_TOKEN CRM_API_TOKEN EXACT_CLIENT_SECRET TELEGRAM_BOT_TOKEN SB_SECRETS_KEY
export SB_CONFIG=config/demo.yaml

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo; echo "stopping..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait "${pids[@]}" 2>/dev/null || true
  if [[ $started_stack == yes ]]; then scripts/stack.sh down; fi
  exit 0
}
trap cleanup INT TERM EXIT

# Every emulator on its loopback port; Exact's first refresh token (what authorizing the
# app would give) goes to a private file, then into the poller's environment only.
token_file="$LOGS/exact-refresh-token"; rm -f "$token_file"
"$BIN/switchboard-sandbox" all --exact-seed-accounts 250 --exact-refresh-token-file "$token_file" \
  >"$LOGS/sandbox.log" 2>&1 & pids+=($!)
for _ in $(seq 1 60); do [[ -s $token_file ]] && break; sleep 0.5; done
EXACT_REFRESH_TOKEN=$(cat "$token_file"); export EXACT_REFRESH_TOKEN
"$BIN/switchboard-ingest-webhook" >"$LOGS/ingest-webhook.log" 2>&1 & pids+=($!)
"$BIN/switchboard-ingest-poller" >"$LOGS/ingest-poller.log" 2>&1 & pids+=($!)
"$BIN/switchboard-transformer" >"$LOGS/transformer.log" 2>&1 & pids+=($!)
"$BIN/switchboard-sink" >"$LOGS/sink.log" 2>&1 & pids+=($!)
# The console's admin token (redrive, discard, replay): random, kept in a private file.
(umask 077; random >"$LOGS/console-admin-token")
SB_CONSOLE_ADMIN_TOKEN=$(cat "$LOGS/console-admin-token") \
  SB__CONSOLE__ADMIN_TOKEN='${env:SB_CONSOLE_ADMIN_TOKEN}' \
  "$BIN/switchboard-console" >"$LOGS/console.log" 2>&1 & pids+=($!)

for url in http://127.0.0.1:8080/readyz http://127.0.0.1:9101/readyz http://127.0.0.1:9102/readyz http://127.0.0.1:9103/readyz http://127.0.0.1:8090/readyz; do
  for _ in $(seq 1 120); do curl -fs "$url" >/dev/null 2>&1 && break; sleep 0.5; done
  curl -fs "$url" >/dev/null || { echo "not ready: $url (logs in $LOGS)"; exit 1; }
done
# Steady Shopify customer traffic (the Pipedrive emulator runs in `all` above).
"$BIN/switchboard-sandbox" demo --webhooks-only --rate "${SB_DEMO_RATE:-5}" \
  >"$LOGS/sandbox-demo.log" 2>&1 & pids+=($!)

cat <<INFO

Switchboard demo is running.
  Shopify webhooks in    POST http://127.0.0.1:8080/webhooks/shop  (sandbox sends ${SB_DEMO_RATE:-5}/s)
  Pipedrive sandbox      http://127.0.0.1:8070/api/v2/persons, /api/v2/organizations  (the sink's target)
  Exact sandbox          http://127.0.0.1:8073  250 accounts polled every 30 s into sb.raw.books.accounts,
                         then to Pipedrive organizations
  Shopify, Telegram      http://127.0.0.1:8072, http://127.0.0.1:8071 (REST and Bot API emulators)
  Sandbox control        GET http://127.0.0.1:8070/_sandbox/requests, /_sandbox/counters (each emulator)
  Kafka                  127.0.0.1:9092  topics sb.raw.shop.customers, sb.canonical.contact, sb.dlq.*
  Schema registry        $REGISTRY/subjects
  Console                http://127.0.0.1:8090/  (dashboard, record trace, DLQ; JSON under /api/v1)
                         admin token for redrive/discard: the file $LOGS/console-admin-token
  Metrics                http://127.0.0.1:8080/metrics  :9101/metrics (transformer)  :9102/metrics (sink)  :9103/metrics (poller)  :8090/metrics (console: consumer lag)
  CLI                    cargo run -q -p switchboard-cli -- lag | replay --help | dlq list --connection crm
  Logs                   $LOGS/*.log
Ctrl-C stops everything this started.
INFO
wait -n "${pids[@]}" || true
echo "a process exited; see $LOGS"
