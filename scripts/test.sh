#!/usr/bin/env bash
# Install the bot and its test extras into .venv (once), then run the whole test suite.
# Extra arguments go to pytest, e.g.  ./scripts/test.sh -k menu
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test]"
exec .venv/bin/python -m pytest "$@"
