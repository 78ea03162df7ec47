#!/usr/bin/env bash
# Builds the plugin and runs the sample job with `pictor-host exec`
# (PICTOR_HOST names another binary), then checks its output.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
bash build.sh
rm -rf test-output
"${PICTOR_HOST:-pictor-host}" exec --plugin {{name}}.wasm --job job.json --input input --output test-output
cmp expected/values.txt test-output/values.txt
echo "ok: {{name}} scaled input/values.txt as expected"
