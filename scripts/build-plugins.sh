#!/usr/bin/env bash
# Builds every crate under plugins/ and tests/plugins/ into a WASI preview 2
# component.
#
#   scripts/build-plugins.sh [--out DIR]
#
# Components land in DIR (default: target/plugins/<name>.wasm). The guest
# compiler is Debian's rustc-web (installed by scripts/install-deps.sh), with
# std built from source for wasm32-wasip2; its target dir (target/guest) is
# kept apart from the host's because the compilers differ. Builds are
# reproducible: paths are remapped and nothing time-dependent is embedded, so
# the same sources give the same bytes (and so the same sha256) anywhere.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$root/target/plugins"
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    *) echo "usage: $0 [--out DIR]" >&2; exit 2 ;;
  esac
done

guest_target="${PICTOR_GUEST_TARGET_DIR:-$root/target/guest}"

# The component linker: Debian's rustc-web shipped it beside its sysroot
# until 1.96.0+dfsg1-1~deb12u2; rustup's stable toolchain (the host
# compiler) ships the same tool, so that one serves where Debian's is gone.
component_ld=/usr/lib/rustlib/x86_64-unknown-linux-gnu/bin/wasm-component-ld
if [ ! -x "$component_ld" ]; then
  component_ld="$(rustc --print sysroot)/lib/rustlib/x86_64-unknown-linux-gnu/bin/wasm-component-ld"
fi
[ -x "$component_ld" ] || { echo "error: no wasm-component-ld (looked in Debian's and rustup's sysroots)" >&2; exit 1; }

export RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1
export CARGO_TARGET_WASM32_WASIP2_LINKER="$component_ld"
export CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS="-C link-self-contained=no \
 -C link-arg=--wasm-ld-path=/usr/bin/wasm-ld-22 -C link-arg=-L/usr/lib/wasm32-wasi \
 -C link-arg=/usr/lib/wasm32-wasi/crt1-reactor.o"
# Plugins ship over the network: no DWARF (the name section stays, so
# backtraces still name functions).
export CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=debuginfo
# No absolute path (checkout folder, cargo home) may reach the binary, and
# the flags must not depend on them either, or std would be rebuilt per folder.
export CARGO_PROFILE_RELEASE_TRIM_PATHS=all
export SOURCE_DATE_EPOCH=0

# Every crate under plugins/ (the job kinds we ship) and tests/plugins/
# (hostile and probing guests for the tests) that builds a component (a
# `cdylib`); shared libraries (plugins/nn) are built as their dependencies.
names=()
for manifest in "$root"/plugins/*/Cargo.toml "$root"/tests/plugins/*/Cargo.toml; do
  if grep -q cdylib "$manifest"; then names+=("$(basename "$(dirname "$manifest")")"); fi
done
packages=()
for name in "${names[@]}"; do packages+=(-p "$name"); done

echo "==> building $(( ${#packages[@]} / 2 )) plugin(s) for wasm32-wasip2"
(cd "$root" && /usr/bin/cargo build --quiet --release --target wasm32-wasip2 \
    -Zbuild-std=std,panic_abort -Ztrim-paths --target-dir "$guest_target" "${packages[@]}")

mkdir -p "$out"
for name in "${names[@]}"; do
  cp "$guest_target/wasm32-wasip2/release/${name//-/_}.wasm" "$out/$name.wasm"
  echo "    $out/$name.wasm  $(sha256sum "$out/$name.wasm" | cut -c1-16)…"
done
