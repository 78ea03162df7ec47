#!/usr/bin/env bash
# Builds {{name}}.wasm, a WASI 0.2 component, with componentize-qjs (from
# npm, installed into ./node_modules on first use; set COMPONENTIZE_QJS to
# use another installation), against the job world of ./wit (whose deps/
# hold the WASI packages app.js calls).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
componentize_qjs="${COMPONENTIZE_QJS:-node_modules/.bin/componentize-qjs}"
if [ -z "${COMPONENTIZE_QJS:-}" ] && [ ! -x node_modules/.bin/componentize-qjs ]; then
  npm install --silent --no-audit --no-fund
fi
"$componentize_qjs" --wit wit --js app.js -n job --sync -o {{name}}.wasm >/dev/null
echo "built {{name}}.wasm ($(wc -c < {{name}}.wasm) bytes)"
