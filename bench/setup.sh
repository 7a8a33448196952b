#!/usr/bin/env bash
# Install what the benchmark needs: wrk and redis-server (Debian packages; redis-server
# for the lockgate-redis target) and LiteLLM's proxy in its own virtual environment
# (bench/.venv-litellm), with the `prisma` client its virtual keys need (litellm-keys).
# Idempotent: a second run changes nothing. lockgate itself comes from the repo's .venv
# (scripts/setup.sh).
set -euo pipefail

LITELLM_VERSION="${LITELLM_VERSION:-1.108.7}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-litellm"
python="${PYTHON:-python3}"

missing=""
command -v wrk >/dev/null 2>&1 || missing="$missing wrk"
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
if [ -n "$missing" ]; then
    echo "setup: installing$missing"
    sudo=""
    if [ "$(id -u)" != "0" ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
fi
echo "setup: $(wrk --version 2>&1 | head -n1)"
echo "setup: $(redis-server --version | head -n1)"

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

# LiteLLM reaches its database (virtual keys, teams, budgets) only through Prisma. The
# client is a PyPI package; the Prisma CLI and its native engines are fetched the first
# time it runs, which needs more than the package registries (see README.md).
if ! "$venv/bin/python" -c 'import prisma' >/dev/null 2>&1; then
    echo "setup: installing prisma into $venv (for litellm-keys)"
    "$venv/bin/python" -m pip install -q "prisma>=0.11.0,<1.0"
fi
echo "setup: prisma $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("prisma"))')"
