#!/usr/bin/env bash
# What `make run` and `make test` need from the system, installed when missing, so the two
# README commands work on a bare Debian/Ubuntu machine. `scripts/setup.sh test` adds what
# only the tests use (a headless browser for tests/ops_browser.rs).
#
# librdkafka is built from source by rdkafka-sys (cmake, a C compiler, zlib and OpenSSL
# headers); scripts/stack.sh runs Kafka and the registry on Java 17 and fetches them with
# Maven and curl; scripts/python-env.sh needs python3. Rust itself comes from rustup.
set -euo pipefail
mode=${1:-run}

need=()
command -v cc >/dev/null || need+=(build-essential)
command -v cmake >/dev/null || need+=(cmake)
command -v pkg-config >/dev/null || need+=(pkg-config)
[[ -f /usr/include/zlib.h ]] || need+=(zlib1g-dev)
[[ -f /usr/include/openssl/ssl.h ]] || need+=(libssl-dev) # rdkafka's ssl feature (SASL/SCRAM, TLS)
[[ -f /usr/include/curl/curl.h || -f /usr/include/x86_64-linux-gnu/curl/curl.h || -f /usr/include/aarch64-linux-gnu/curl/curl.h ]] ||
  need+=(libcurl4-openssl-dev)
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
command -v curl >/dev/null || need+=(curl)
command -v python3 >/dev/null || need+=(python3)
command -v flock >/dev/null || need+=(util-linux)
if [[ $mode == test ]]; then
  command -v chromium >/dev/null || need+=(chromium)
fi

if ((${#need[@]})); then
  if ! command -v apt-get >/dev/null; then
    echo "setup: missing ${need[*]} (Debian package names), and there is no apt-get to install them" >&2
    exit 1
  fi
  if [[ $(id -u) -eq 0 ]]; then
    sudo=()
  elif command -v sudo >/dev/null; then
    sudo=(sudo)
  else
    echo "setup: missing ${need[*]}; run as root, or with sudo available, to install them" >&2
    exit 1
  fi
  echo "setup: installing ${need[*]}" >&2
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

command -v cargo >/dev/null || {
  echo "setup: cargo is missing; install Rust with rustup (https://rustup.rs), then run this again" >&2
  exit 1
}
