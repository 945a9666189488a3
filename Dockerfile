# syntax=docker/dockerfile:1
# One image with every Switchboard binary: switchboard-ingest-webhook, -ingest-poller,
# -transformer, -sink, -console, switchboard-sandbox and the `switchboard` CLI
# (`--workspace --bins` builds every binary; the build stage copies each one named
# `switchboard` or `switchboard-*`, which scripts/validate-deploy.sh checks against the
# manifests' [[bin]] names). Pick one with the container's command, e.g.
#   docker run --rm switchboard:dev switchboard-ingest-webhook --config /app/config/compose.yaml
#
# Stages:
#   skeleton  the workspace's manifests and lock file with empty sources, so the next stage's
#             dependency layer is rebuilt only when a Cargo.toml or Cargo.lock changes (what
#             cargo-chef does, without the extra tool)
#   build     dependencies first (cached layer), then the real sources
#   runtime   Debian slim, non-root user, binaries + schemas/ mappings/ config/
#
# Validated in CI (scripts/validate-deploy.sh parses it with BuildKit's own parser); no
# Docker engine runs there.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# ---------------------------------------------------------------- skeleton
FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS skeleton
WORKDIR /src
COPY . .
# Keep every Cargo.toml and Cargo.lock; replace each target's source (src/lib.rs,
# src/main.rs, src/bin/*.rs and every `path = "..."` a manifest names) by an empty stub.
RUN set -eu; mkdir /skeleton; \
    cp Cargo.toml Cargo.lock /skeleton/; \
    for manifest in $(find . -name Cargo.toml -not -path './target/*' -not -path './.git/*'); do \
      dir=$(dirname "$manifest"); mkdir -p "/skeleton/$dir"; cp "$manifest" "/skeleton/$dir/"; \
      for stub in src/lib.rs src/main.rs $(cd "$dir" && find src/bin -name '*.rs' 2>/dev/null) \
                  $(sed -n 's/^path *= *"\(.*\)"/\1/p' "$manifest"); do \
        [ -f "$dir/$stub" ] || continue; \
        mkdir -p "$(dirname "/skeleton/$dir/$stub")"; \
        case "$stub" in \
          *lib.rs) : >"/skeleton/$dir/$stub" ;; \
          *) echo 'fn main() {}' >"/skeleton/$dir/$stub" ;; \
        esac; \
      done; \
    done

# ---------------------------------------------------------------- build
FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
# rdkafka builds librdkafka with cmake (features cmake-build, ssl, zstd).
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake make g++ pkg-config libssl-dev \
      libcurl4-openssl-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
ENV CARGO_TERM_COLOR=never
# The tests crate (end-to-end tests, bench tools) is not shipped.
ARG CARGO_BUILD_FLAGS="--release --locked --workspace --exclude switchboard-tests --bins"
COPY --from=skeleton /skeleton/ ./
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build ${CARGO_BUILD_FLAGS}
COPY . .
# COPY keeps the sources' old timestamps: touch them so cargo rebuilds over the stubs.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    find crates services -name '*.rs' -exec touch {} + \
 && cargo build ${CARGO_BUILD_FLAGS} \
 && mkdir /out \
 && find target/release -maxdepth 1 -type f -perm -u+x \
      \( -name 'switchboard' -o -name 'switchboard-*' \) -exec cp {} /out/ \; \
 && ls -l /out

# ---------------------------------------------------------------- runtime
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 switchboard \
 && useradd --system --uid 10001 --gid switchboard --home-dir /app --shell /usr/sbin/nologin switchboard
COPY --from=build /out/ /usr/local/bin/
WORKDIR /app
COPY --chown=root:root schemas/ /app/schemas/
COPY --chown=root:root mappings/ /app/mappings/
COPY --chown=root:root config/ /app/config/
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
ENV RUST_LOG=info
# Webhook, admin and console ports (see the services' defaults); the sandbox uses 8070-8073.
EXPOSE 8080 8090 9101 9102 9103
# Services exit cleanly on SIGTERM: readiness off, drain, commit, stop.
STOPSIGNAL SIGTERM
CMD ["switchboard-ingest-webhook", "--config", "/app/config/compose.yaml"]
