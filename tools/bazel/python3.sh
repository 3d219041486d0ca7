#!/bin/sh
# Runs the project's .venv Python. This file is reached through a symlink in Bazel's runfiles;
# its real path lies in the source tree, two levels below the repository root.
root=$(dirname "$(dirname "$(dirname "$(readlink -f "$0")")")")
if [ ! -x "$root/.venv/bin/python" ]; then
  echo "lamp_tf: $root/.venv is missing; run 'make setup' before 'bazel test //tests/...'." >&2
  exit 1
fi
exec "$root/.venv/bin/python" "$@"
