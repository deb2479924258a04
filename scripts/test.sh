#!/usr/bin/env bash
# Install the bot and its test extras into .venv (again only when pyproject.toml changes), then
# run the whole test suite. Extra arguments go to pytest, e.g.  ./scripts/test.sh -k menu
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh ".[test]"
exec .venv/bin/python -m pytest "$@"
