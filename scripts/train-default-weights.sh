#!/usr/bin/env bash
# Trains the upscale plugin's bundled default weights with the train plugin
# itself, from the committed job specs and images, and copies them into
# fixtures/weights/ (with each run's report and loss curve beside them).
#
#   scripts/train-default-weights.sh [2] [4]     (default: both scales)
#
# Builds pictor-host (release) and the plugins, then runs the two scales one
# after the other (about 20 min each on lavapipe with 2 cores). Each run
# checkpoints to target/train-x<scale>.ckpt: if one is interrupted, running
# the script again resumes it (with the same final weights).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scales=("$@")
[ ${#scales[@]} -eq 0 ] && scales=(2 4)
cargo build --release --quiet -p pictor-host
bash scripts/build-plugins.sh
for s in "${scales[@]}"; do
  out="$(mktemp -d)"
  echo "==> training ×$s (fixtures/jobs/train-x$s.json) into $out"
  target/release/pictor-host exec --plugin target/plugins/train.wasm \
      --job "fixtures/jobs/train-x$s.json" --output "$out/output" \
      --checkpoint "target/train-x$s.ckpt" --json > "$out/outcome.json"
  rm -f "target/train-x$s.ckpt"
  cp "$out/output/weights.safetensors" "fixtures/weights/espcn-x$s.safetensors"
  cp "$out/output/report.json" "fixtures/weights/espcn-x$s.report.json"
  cp "$out/output/loss.png" "fixtures/weights/espcn-x$s.loss.png"
  echo "    fixtures/weights/espcn-x$s.safetensors  $(sha256sum "fixtures/weights/espcn-x$s.safetensors" | cut -c1-16)…"
done
