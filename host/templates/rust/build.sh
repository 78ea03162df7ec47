#!/usr/bin/env bash
# Builds {{name}}.wasm, a WASI 0.2 component.
#
# With rustup's wasm32-wasip2 target (`rustup target add wasm32-wasip2`),
# this is a plain `cargo build`. Without it, on Debian 12 with the
# rustc-web, rust-web-src, wasi-libc and lld-22 packages, it builds std
# from source with Debian's compiler, as Pictor Host's own plugins are.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
target_dir="${CARGO_TARGET_DIR:-target}"

if rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  cargo build --release --target wasm32-wasip2
else
  component_ld=/usr/lib/rustlib/x86_64-unknown-linux-gnu/bin/wasm-component-ld
  if [ ! -x "$component_ld" ]; then
    component_ld="$(rustc --print sysroot 2>/dev/null)/lib/rustlib/x86_64-unknown-linux-gnu/bin/wasm-component-ld"
  fi
  if [ ! -x /usr/bin/rustc ] || [ ! -x "$component_ld" ]; then
    echo "error: no wasm32-wasip2 toolchain: run \`rustup target add wasm32-wasip2\`," >&2
    echo "       or install Debian's rustc-web rust-web-src wasi-libc lld-22" >&2
    exit 1
  fi
  RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 \
  CARGO_TARGET_WASM32_WASIP2_LINKER="$component_ld" \
  CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS="-C link-self-contained=no \
 -C link-arg=--wasm-ld-path=/usr/bin/wasm-ld-22 -C link-arg=-L/usr/lib/wasm32-wasi \
 -C link-arg=/usr/lib/wasm32-wasi/crt1-reactor.o" \
    /usr/bin/cargo build --release --target wasm32-wasip2 -Zbuild-std=std,panic_abort
fi
cp "$target_dir/wasm32-wasip2/release/{{crate}}.wasm" {{name}}.wasm
echo "built {{name}}.wasm ($(wc -c < {{name}}.wasm) bytes)"
