#!/usr/bin/env bash
# Second command of the README, and what CI runs: installs what is needed,
# then runs every test (unit, doc, plugin logic natively, and the end-to-end
# tests that build the plugins from source and drive the real binary).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bash scripts/install-deps.sh
# Formatting first: seconds, and it fails before a long build. Then the
# lints, on every target (tests and benches too), warnings as errors.
cargo fmt --all -- --check
cargo clippy --release --locked --workspace --all-targets -- -D warnings
# Mesa (lavapipe) warns on every device open without a runtime dir.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
# Property tests of hostile worker.json, job specs and leases: a fixed
# number of cases each (well under a second in all).
export PROPTEST_CASES="${PROPTEST_CASES:-4096}"
cargo test --release --locked --workspace
