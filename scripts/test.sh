#!/usr/bin/env bash
# Install Fathom Studio with its dev tools at the versions CI last passed with, then check the
# layers (import contracts), lint (ruff), type-check the engine (mypy) and run the test suite.
# Usage: bash scripts/test.sh [extra pytest args]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/system-deps.sh
python -m pip install -q -c requirements/ci-constraints.txt -e ".[dev]"

echo "== import contracts"
lint-imports --no-cache
echo "== ruff"
ruff check .
ruff format --check .
echo "== mypy (engine)"
python scripts/typecheck.py
echo "== pytest"
exec python -m pytest -n 2 -q "$@"
