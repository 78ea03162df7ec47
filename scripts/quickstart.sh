#!/usr/bin/env bash
# First command of the README: installs what is needed, builds the host and
# the plugins, and runs the sample job on the embedded default inputs.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bash scripts/install-deps.sh
# Mesa (lavapipe) warns on every device open without a runtime dir.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
echo "==> building pictor-host (release; the first build takes ~10 minutes on 2 cores)"
cargo build --release --locked -p pictor-host
bash scripts/build-plugins.sh

out="target/quickstart/hello-sample"
rm -rf "$out"
echo "==> running the sample job fixtures/jobs/hello.json"
target/release/pictor-host exec \
  --plugin target/plugins/hello.wasm \
  --job fixtures/jobs/hello.json \
  --input fixtures/inputs/hello \
  --output "$out"
echo "==> done: outputs are in $out"
