#!/usr/bin/env bash
# The Python virtualenv of the end-to-end tests (confluent-kafka + its Avro deserializer),
# in ~/.cache/switchboard/venv outside the clone. Idempotent and quick when present: it
# reinstalls only when tests/python/requirements.txt changed. Prints the venv's python.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${SB_PYTHON_VENV:-$HOME/.cache/switchboard/venv}"
req="$root/tests/python/requirements.txt"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "$venv/bin/python"
  exit 0
fi
echo "python-env: installing $req into $venv" >&2
if ! python3 -c 'import ensurepip' 2>/dev/null && command -v apt-get >/dev/null; then
  # Debian splits venv support out of python3.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
fi
[[ -x "$venv/bin/python" ]] || python3 -m venv "$venv" >&2
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req" >&2
echo "$want" >"$stamp"
echo "$venv/bin/python"
