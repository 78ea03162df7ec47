#!/usr/bin/env bash
# Builds {{name}}.wasm, a WASI 0.2 component, with componentize-qjs (from
# npm, installed into ./node_modules on first use; set COMPONENTIZE_QJS to
# use another installation). world.wit is the job world plus the WASI
# imports app.js calls; ./wit is Pictor's WIT, ./wit/deps the WASI packages.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
componentize_qjs="${COMPONENTIZE_QJS:-node_modules/.bin/componentize-qjs}"
if [ -z "${COMPONENTIZE_QJS:-}" ] && [ ! -x node_modules/.bin/componentize-qjs ]; then
  npm install --silent --no-audit --no-fund
fi
rm -rf build/wit
mkdir -p build/wit/deps/pictor
cp world.wit build/wit/
cp wit/*.wit build/wit/deps/pictor/
cp wit/deps/*.wit build/wit/deps/
"$componentize_qjs" --wit build/wit --js app.js -n job --sync -o {{name}}.wasm >/dev/null
echo "built {{name}}.wasm ($(wc -c < {{name}}.wasm) bytes)"
