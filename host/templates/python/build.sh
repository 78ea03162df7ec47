#!/usr/bin/env bash
# Builds {{name}}.wasm, a WASI 0.2 component, with componentize-py (from
# PyPI, installed into ./venv on first use; set COMPONENTIZE_PY to use
# another installation).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
componentize_py="${COMPONENTIZE_PY:-venv/bin/componentize-py}"
if [ -z "${COMPONENTIZE_PY:-}" ] && [ ! -x venv/bin/componentize-py ]; then
  python3 -m venv venv
  venv/bin/pip install --quiet -r requirements.txt
fi
"$componentize_py" -d wit -w job componentize app -o {{name}}.wasm >/dev/null
echo "built {{name}}.wasm ($(wc -c < {{name}}.wasm) bytes)"
