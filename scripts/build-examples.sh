#!/usr/bin/env bash
# Builds the job plugins written in other languages than Rust, with their
# languages' standard toolchains, into WASI 0.2 components:
#
#   examples/python  ->  py-scale.wasm  (componentize-py, from PyPI)
#   examples/js      ->  js-scale.wasm  (componentize-qjs, from npm)
#
#   scripts/build-examples.sh [--out DIR]
#
# Components land in DIR (default: target/plugins/<name>.wasm), beside the
# Rust plugins (scripts/build-plugins.sh calls this one). The toolchains are
# installed by this script, pinned, into target/tools/ (a Python venv, an
# npm prefix): the first run downloads them, later runs reuse them.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$root/target/plugins"
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    *) echo "usage: $0 [--out DIR]" >&2; exit 2 ;;
  esac
done
tools="$root/target/tools"
mkdir -p "$out" "$tools"

# Python: componentize-py bundles CPython and the app into one component.
venv="$tools/python"
requirements="$root/examples/python/requirements.txt"
if ! cmp -s "$requirements" "$venv/requirements.txt" 2>/dev/null; then
  echo "==> installing componentize-py into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$venv/requirements.txt"
fi
echo "==> building examples/python with $("$venv/bin/componentize-py" --version)"
"$venv/bin/componentize-py" -d "$root/wit" -w job componentize \
  -p "$root/examples/python" app -o "$out/py-scale.wasm" >/dev/null
echo "    $out/py-scale.wasm  $(sha256sum "$out/py-scale.wasm" | cut -c1-16)…"

# JavaScript: componentize-qjs bundles QuickJS and the app, against the job
# world of wit/ (with the WASI packages of wit/deps).
js_tools="$tools/js"
if ! cmp -s "$root/examples/js/package.json" "$js_tools/package.json" 2>/dev/null; then
  echo "==> installing componentize-qjs into $js_tools"
  rm -rf "$js_tools"
  mkdir -p "$js_tools"
  cp "$root/examples/js/package.json" "$js_tools/package.json"
  (cd "$js_tools" && npm install --silent --no-audit --no-fund --no-package-lock)
fi
echo "==> building examples/js with componentize-qjs $(node -p "require('$js_tools/node_modules/componentize-qjs/package.json').version")"
"$js_tools/node_modules/.bin/componentize-qjs" --wit "$root/wit" --js "$root/examples/js/app.js" \
  -n job --sync -o "$out/js-scale.wasm" >/dev/null
echo "    $out/js-scale.wasm  $(sha256sum "$out/js-scale.wasm" | cut -c1-16)…"
