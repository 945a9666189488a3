#!/usr/bin/env bash
# Builds the Kafka Streams peer when its sources or POM changed (Maven Central only), then
# runs it in this process: `run.sh <bootstrap> <registry-url> <input> <output>
# <application-id> <state-dir> <contact.avsc>` (see ContactsPeer.java); `run.sh --build`
# only builds.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
stamp=$(cat "$here/pom.xml" "$here"/src/main/java/io/switchboard/peer/*.java | sha256sum | cut -d' ' -f1)
if [[ $(cat "$here/target/.built" 2>/dev/null) != "$stamp" ]]; then
  echo "peer: building the Kafka Streams peer with Maven" >&2
  mvn -q -B -f "$here/pom.xml" package >&2
  echo "$stamp" >"$here/target/.built"
fi
[[ ${1:-} != --build ]] || exit 0
exec "${SB_JAVA:-java}" -Xms64m -Xmx512m -cp "$here/target/classes:$here/target/lib/*" \
  io.switchboard.peer.ContactsPeer "$@"
