#!/usr/bin/env bash
# Set up and run lockgate on its embedded default: SQLite and the bundled local model,
# served as the model `local` on http://127.0.0.1:4000 (arguments go to `lockgate serve`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/lockgate serve "$@"
