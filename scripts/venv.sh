# Sourced by run.sh and test.sh: make .venv usable, then install what $1 names ("." or ".[test]")
# when pyproject.toml changed since the last install (not on every start).
PYTHON="${PYTHON:-python3}"
usable() { .venv/bin/python -c 'import sys, pip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }
if ! usable; then
  # Missing, or left half-made (no python3-venv, an older Python): made again from scratch.
  if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "Python 3.11 or newer is needed: install it, or point PYTHON at it (PYTHON=python3.11)" >&2
    exit 2
  fi
  rm -rf .venv
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi
stamp=".venv/.installed-$(echo "$1" | tr -c 'a-z' '_')"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet -e "$1"
  touch "$stamp"
fi
