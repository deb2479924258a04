#!/usr/bin/env bash
# Install the bot into .venv (once), then run it.
#   ./scripts/run.sh sandbox     chat with the bot in this terminal, no Telegram token needed
#   ./scripts/run.sh             run for real (long polling); needs BOT_TOKEN in .env
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .
exec .venv/bin/python run_bot.py "$@"
