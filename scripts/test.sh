#!/usr/bin/env bash
# Set up and run the whole test suite (arguments go to pytest).
# PostgreSQL and Redis tests use LOCKGATE_TEST_POSTGRES_URL / LOCKGATE_TEST_REDIS_URL.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
.venv/bin/ruff check src tests bench
.venv/bin/pyright
exec .venv/bin/python -m pytest "$@"
