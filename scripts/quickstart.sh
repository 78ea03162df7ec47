#!/usr/bin/env bash
# First command of the README: installs what is needed, builds the host and
# the plugins, queues the sample jobs in the local spool of
# fixtures/worker.json (target/spool) and runs the worker until they are done.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bash scripts/install-deps.sh
# Mesa (lavapipe) warns on every device open without a runtime dir.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
echo "==> building pictor-host (release; the first build takes ~10 minutes on 2 cores)"
cargo build --release --locked -p pictor-host
bash scripts/build-plugins.sh

host=target/release/pictor-host
spool=target/spool
rm -rf "$spool"   # a fresh demo: job ids are unique per spool
echo "==> queueing the sample jobs in $spool"
$host submit --spool "$spool" --plugin target/plugins/hello.wasm fixtures/jobs/hello.json
$host submit --spool "$spool" --plugin target/plugins/matmul.wasm fixtures/jobs/matmul.json
$host submit --spool "$spool" --plugin target/plugins/probe.wasm fixtures/jobs/steps.json
$host submit --spool "$spool" --plugin target/plugins/render.wasm fixtures/jobs/render.json
$host submit --spool "$spool" --plugin target/plugins/upscale.wasm fixtures/jobs/upscale.json
echo "==> running the worker: pictor-host run --config fixtures/worker.json --until-idle"
$host run --config fixtures/worker.json --until-idle
echo "==> done: results are in $spool/done/<job id>/ (outputs in output/, result.json beside)"
for result in "$spool"/done/*/result.json; do
  printf '    %-16s %s\n' "$(basename "$(dirname "$result")")" "$(grep -m1 '"status"' "$result" | tr -d ' ,')"
done
