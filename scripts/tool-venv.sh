#!/usr/bin/env bash
# Create or update a git-ignored tool venv and print its bin directory on stdout
# (all other output goes to stderr):
#
#   bash scripts/tool-venv.sh sam       .venv-sam      from requirements-sam.txt      (SAM CLI, cfn-lint)
#   bash scripts/tool-venv.sh checkov   .venv-checkov  from requirements-checkov.txt  (checkov)
#   bash scripts/tool-venv.sh lambda    .venv-lambda   from requirements-lambda.txt   (cargo-lambda, zig)
#
#   BIN=$(bash scripts/tool-venv.sh sam) && "$BIN/sam" validate --lint
#
# The same pattern as scripts/venv.sh: idempotent and quick when up to date (the sha256 of the
# requirements file and the interpreter's version are stored in .venv-NAME/.requirements.stamp,
# and pip only runs when they change); a venv whose python no longer runs is rebuilt; concurrent
# runs are serialised with flock. Override the interpreter with PYTHON=.
set -euo pipefail

name=${1:?usage: $0 sam|checkov|lambda}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
req="$root/requirements-$name.txt"
venv="$root/.venv-$name"
stamp="$venv/.requirements.stamp"
base_python=${PYTHON:-python3}
[[ -f $req ]] || { echo "tool-venv.sh: no $req" >&2; exit 2; }

if command -v flock >/dev/null 2>&1; then
  exec 9<"$req"
  flock 9
fi

want="$(sha256sum "$req" | cut -d' ' -f1) $("$base_python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"

if [ -x "$venv/bin/python" ] && ! "$venv/bin/python" -c '' >/dev/null 2>&1; then
  echo "tool-venv.sh: $venv is broken, rebuilding" >&2
  rm -rf "$venv"
fi

if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  if [ ! -x "$venv/bin/python" ] || \
     [ "$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" != "${want#* }" ]; then
    echo "tool-venv.sh: creating $venv" >&2
    "$base_python" -m venv --clear "$venv" >&2
  fi
  echo "tool-venv.sh: installing $(basename "$req") into $(basename "$venv")" >&2
  start=$SECONDS
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$req" >&2
  echo "tool-venv.sh: $(basename "$venv") ready in $((SECONDS - start)) s" >&2
  printf '%s\n' "$want" >"$stamp"
fi

echo "$venv/bin"
