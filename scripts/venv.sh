#!/usr/bin/env bash
# Create or update the git-ignored Python venv at .venv with requirements-test.txt
# and print the venv's python path on stdout (all other output goes to stderr).
#
#   PY=$(bash scripts/venv.sh) && "$PY" -m pytest -q tests/test_sigv4_proxy.py
#
# Idempotent and quick when up to date: the sha256 of requirements-test.txt (and
# the base interpreter's version) is stored in .venv/.requirements-test.stamp and
# pip only runs when it changed. A venv whose python no longer runs is rebuilt.
# Concurrent runs are serialised with flock. Override the interpreter with PYTHON=.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.venv"
req="$root/requirements-test.txt"
stamp="$venv/.requirements-test.stamp"
base_python=${PYTHON:-python3}

# Serialise concurrent invocations (e.g. parallel test binaries) on this script.
if command -v flock >/dev/null 2>&1; then
  exec 9<"${BASH_SOURCE[0]}"
  flock 9
fi

want="$(sha256sum "$req" | cut -d' ' -f1) $("$base_python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"

if [ -x "$venv/bin/python" ] && ! "$venv/bin/python" -c '' >/dev/null 2>&1; then
  echo "venv.sh: $venv is broken, rebuilding" >&2
  rm -rf "$venv"
fi

if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  if [ ! -x "$venv/bin/python" ] || \
     [ "$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" != "${want#* }" ]; then
    echo "venv.sh: creating $venv" >&2
    "$base_python" -m venv --clear "$venv" >&2
  fi
  echo "venv.sh: installing $(basename "$req")" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$req" >&2
  printf '%s\n' "$want" >"$stamp"
fi

echo "$venv/bin/python"
