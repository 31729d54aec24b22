#!/usr/bin/env bash
# Create bench/.venv-litellm with the LiteLLM proxy, for `python -m bench.run --targets litellm`.
# Usage: bash bench/litellm/setup.sh   (PYTHON=python3.11 by default)
set -euo pipefail
bench_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3.11}"
venv="$bench_dir/.venv-litellm"
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet -r "$bench_dir/litellm/requirements.txt"
"$venv/bin/litellm" --version
echo "LiteLLM ready in $venv"
