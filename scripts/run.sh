#!/usr/bin/env bash
# Install the bot into .venv (again only when pyproject.toml changes), then run it.
#   ./scripts/run.sh sandbox     chat with the bot in this terminal, no Telegram token needed
#   ./scripts/run.sh             run for real (long polling); needs BOT_TOKEN in .env
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh "."
exec .venv/bin/python run_bot.py "$@"
