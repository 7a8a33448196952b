#!/usr/bin/env bash
# Install what the benchmark needs: wrk (Debian package) and LiteLLM's proxy in its own
# virtual environment (bench/.venv-litellm). Idempotent: a second run changes nothing.
# lockgate itself comes from the repo's .venv (scripts/setup.sh).
set -euo pipefail

LITELLM_VERSION="${LITELLM_VERSION:-1.108.7}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-litellm"
python="${PYTHON:-python3}"

if ! command -v wrk >/dev/null 2>&1; then
    echo "setup: installing wrk"
    sudo=""
    if [ "$(id -u)" != "0" ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq wrk >/dev/null
fi
echo "setup: $(wrk --version 2>&1 | head -n1)"

if [ ! -x "$venv/bin/python" ]; then
    echo "setup: creating $venv"
    "$python" -m venv "$venv"
fi

installed="$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("litellm"))' 2>/dev/null || true)"
if [ "$installed" != "$LITELLM_VERSION" ] || [ ! -x "$venv/bin/litellm" ]; then
    echo "setup: installing litellm[proxy]==$LITELLM_VERSION into $venv"
    "$venv/bin/python" -m pip install -q --upgrade pip
    "$venv/bin/python" -m pip install -q "litellm[proxy]==$LITELLM_VERSION"
fi
echo "setup: litellm $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("litellm"))')"
