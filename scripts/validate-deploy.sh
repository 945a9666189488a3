#!/usr/bin/env bash
# Validates the deployment files offline; nothing is deployed or run (no cluster, no Docker
# engine). `make deploy-check` and .ci/run call it.
#
#   helm/switchboard   helm lint --strict and helm template with the default values and with
#                      ci/values-full.yaml (everything on); the rendered manifests checked
#                      against Kubernetes' own schemas by kubectl-validate (native kinds built
#                      in, the CRD kinds from scripts/deploy-check/crds); and the chart's own
#                      guards (too many replicas, SASL without a Secret) must refuse
#   docker-compose.yml compose-spec's Go loader (scripts/deploy-check)
#   Dockerfile         BuildKit's parser and linter (scripts/deploy-check), every [[bin]] of
#                      crates/ and services/ named so the build stage copies it, and the
#                      skeleton stage's script run here, its output read by `cargo metadata`
#
# Tools are built from the Go module proxy into $SB_CACHE/bin (~/.cache/switchboard/bin),
# with Go's module cache under $SB_CACHE too, and rebuilt only when their pinned version (or
# deploy-check's source) changes. Cold (nothing cached) about 4 minutes on 2 cores, warm 2 s.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

HELM_VERSION=v3.21.4
KUBECTL_VALIDATE_VERSION=v0.0.4
KUBE_VERSION=1.30.0 # the newest Kubernetes whose schemas kubectl-validate v0.0.4 embeds

CACHE=${SB_CACHE:-$HOME/.cache/switchboard}
BIN=$CACHE/bin
export GOMODCACHE=${GOMODCACHE:-$CACHE/go-mod} GOCACHE=${GOCACHE:-$CACHE/go-build}
export GOFLAGS=-buildvcs=false GOTOOLCHAIN=local
CHART=helm/switchboard
t0=$SECONDS

log() { printf 'validate-deploy: %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

command -v go >/dev/null || PATH=/usr/local/go/bin:$PATH
command -v go >/dev/null || die "Go is needed to build helm and the validators (apt-get install golang, or /usr/local/go)"
mkdir -p "$BIN"

# go install PACKAGE@VERSION into $BIN unless the stamp says it is there already.
install_tool() {
  local name=$1 package=$2 version=$3 stamp="$BIN/.$1.version"
  if [[ -x $BIN/$name && $(cat "$stamp" 2>/dev/null) == "$version" ]]; then return; fi
  log "building $name $version from the Go module proxy (once; cached in $CACHE)"
  GOBIN=$BIN go install "$package@$version" >"$CACHE/go-install-$name.log" 2>&1 ||
    { tail -n 30 "$CACHE/go-install-$name.log" >&2; die "go install $package@$version"; }
  echo "$version" >"$stamp"
  built=yes
}
install_tool helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION"
install_tool kubectl-validate sigs.k8s.io/kubectl-validate "$KUBECTL_VALIDATE_VERSION"
checker_hash=$(cat scripts/deploy-check/{main.go,go.mod,go.sum} | sha256sum | cut -c1-16)
if [[ ! -x $BIN/sb-deploy-check || $(cat "$BIN/.sb-deploy-check.version" 2>/dev/null) != "$checker_hash" ]]; then
  log "building scripts/deploy-check (compose-go, BuildKit's Dockerfile parser)"
  (cd scripts/deploy-check && go build -o "$BIN/sb-deploy-check" .) >"$CACHE/go-build-deploy-check.log" 2>&1 ||
    { tail -n 30 "$CACHE/go-build-deploy-check.log" >&2; die "building scripts/deploy-check"; }
  echo "$checker_hash" >"$BIN/.sb-deploy-check.version"
  built=yes
fi
# The binaries are what is kept; Go's build cache (~2 GB) is dropped once they are built,
# the module cache stays so a version bump downloads only what changed.
if [[ ${built:-} == yes ]]; then go clean -cache; fi
log "tools ready after $((SECONDS - t0)) s"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
helm=("$BIN/helm")

# ---------------------------------------------------------------- Helm chart
for values in default full; do
  args=(--kube-version "$KUBE_VERSION")
  [[ $values == full ]] && args+=(-f "$CHART/ci/values-full.yaml")
  "${helm[@]}" lint --strict "$CHART" "${args[@]}" >"$work/lint-$values.log" 2>&1 ||
    { cat "$work/lint-$values.log" >&2; die "helm lint ($values values)"; }
  mkdir -p "$work/$values"
  "${helm[@]}" template sb "$CHART" --namespace switchboard "${args[@]}" --output-dir "$work/$values" >/dev/null ||
    die "helm template ($values values)"
  kinds=$(cat "$work/$values"/switchboard/templates/{,tests/}*.yaml 2>/dev/null | grep -c '^kind:' || true)
  "$BIN/kubectl-validate" "$work/$values" --version "${KUBE_VERSION%.*}" \
    --local-crds scripts/deploy-check/crds >"$work/validate-$values.log" 2>&1 ||
    { grep -v '\.\.\..*OK' "$work/validate-$values.log" >&2; die "kubectl-validate ($values values)"; }
  log "helm lint, template and kubectl-validate: $values values, $kinds objects OK"
done
# The chart refuses what would not work: more consumers than partitions, SASL without a
# Secret for the password, the console's Ingress without a read token, alerts through a
# connection that is not a Telegram bot.
refuses() {
  local why=$1 && shift
  if "${helm[@]}" template sb "$CHART" --kube-version "$KUBE_VERSION" "$@" >/dev/null 2>"$work/refused.log"; then
    die "the chart accepted $why"
  fi
  grep -q "$why" "$work/refused.log" || { cat "$work/refused.log" >&2; die "unexpected refusal for $why"; }
}
refuses "transformer.replicaCount" --set transformer.replicaCount=7 --set kafka.partitions=6
refuses "kafka.security.sasl.existingSecret" --set kafka.security.protocol=SASL_SSL --set kafka.security.sasl.username=u
refuses "console.ingress.enabled" --set console.ingress.enabled=true
refuses "console.alerts.telegram" --set console.alerts.telegram=crm --set console.alerts.chatId=1
refuses "mappings: set one of files" --set mappings.existingConfigMap=a --set-string "mappings.files.x\.jq=."
log "chart guards refuse bad values"

# ---------------------------------------------------------------- compose + Dockerfile
"$BIN/sb-deploy-check" . || die "docker-compose.yml / Dockerfile"
# Every binary the image should ship is one the build stage copies out: it keeps the
# executables named `switchboard` or `switchboard-*` (the tests crate is excluded).
bins=$(find crates services -name Cargo.toml -exec sed -n '/^\[\[bin\]\]/,/^name/s/^name *= *"\(.*\)"/\1/p' {} + | sort)
[[ -n $bins ]] || die "no [[bin]] targets found in crates/ and services/"
for bin in $bins; do
  [[ $bin == switchboard || $bin == switchboard-* ]] ||
    die "binary $bin would not be copied into the image (the Dockerfile keeps switchboard and switchboard-*)"
done
grep -q "'switchboard' -o -name 'switchboard-\*'" Dockerfile ||
  die "the Dockerfile's build stage no longer copies switchboard and switchboard-* binaries"
log "Dockerfile ships every binary: $(echo $bins | tr ' ' ',')"
# The Dockerfile's skeleton stage, run here: its stubs must make a workspace cargo reads.
if command -v cargo >/dev/null; then
  python3 - Dockerfile "$work/skeleton" >"$work/skeleton.sh" <<'EOF'
import sys
text = open(sys.argv[1]).read()
start = text.index("RUN set -eu; mkdir /skeleton")
print(text[start + 4:text.index("\n\n", start)].replace("/skeleton", sys.argv[2]))
EOF
  mkdir -p "$work/src"
  cp -r Cargo.toml Cargo.lock crates services tests "$work/src/"
  (cd "$work/src" && sh "$work/skeleton.sh") || die "the Dockerfile's skeleton script failed"
  (cd "$work/skeleton" && cargo metadata --format-version 1 --offline --no-deps >/dev/null) ||
    die "the Dockerfile's skeleton is not a workspace cargo can read"
  log "Dockerfile skeleton stage: $(find "$work/skeleton" -name Cargo.toml | wc -l) manifests, cargo reads them"
fi
log "all deployment files valid in $((SECONDS - t0)) s"
