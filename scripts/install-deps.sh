#!/usr/bin/env bash
# Installs what building and testing Pictor Host needs on a fresh Debian
# machine (see shared TOOLCHAIN notes in docs/toolchain.md). Idempotent: skips
# what is already there. Needs root (or sudo) for apt.
set -euo pipefail

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
# The guest toolchain, software Vulkan, and a headless browser (with a font)
# for the tests that drive the portal and status pages.
for pkg in rustc-web cargo-web rust-web-src wasi-libc lld-22 mesa-vulkan-drivers \
           chromium chromium-driver fonts-dejavu-core; do
  have_pkg "$pkg" || need+=("$pkg")
done
# The example plugins in other languages (scripts/build-examples.sh) install
# their toolchains from PyPI and npm: they need Python's venv and Node.js.
python3 -m venv --help >/dev/null 2>&1 || need+=(python3-venv)
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)

if [ ${#need[@]} -gt 0 ]; then
  echo "==> installing Debian packages: ${need[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  echo "==> Debian packages already installed"
fi

if ! command -v cargo >/dev/null 2>&1 || [ "$(command -v cargo)" = /usr/bin/cargo ]; then
  echo "error: rustup's stable cargo (1.95) must be first on PATH for the host build" >&2
  exit 1
fi

# scripts/test.sh checks formatting and lints first.
if ! cargo fmt --version >/dev/null 2>&1; then
  echo "==> adding rustfmt to rustup's toolchain"
  rustup component add rustfmt
fi
if ! cargo clippy --version >/dev/null 2>&1; then
  echo "==> adding clippy to rustup's toolchain"
  rustup component add clippy
fi

# Everything the guest build relies on must now be there.
for f in /usr/bin/cargo /usr/bin/rustc /usr/bin/wasm-ld-22 /usr/lib/wasm32-wasi/crt1-reactor.o \
         /usr/lib/rustlib/src/rust/library/Cargo.lock /usr/bin/chromium /usr/bin/chromedriver; do
  [ -e "$f" ] || { echo "error: $f is missing after install" >&2; exit 1; }
done
# The component linker comes from Debian's rustc-web (older revisions) or
# rustup's toolchain (scripts/build-plugins.sh picks whichever is there).
if [ ! -x /usr/lib/rustlib/x86_64-unknown-linux-gnu/bin/wasm-component-ld ] &&
   [ ! -x "$(rustc --print sysroot)/lib/rustlib/x86_64-unknown-linux-gnu/bin/wasm-component-ld" ]; then
  echo "error: wasm-component-ld is in neither Debian's nor rustup's sysroot" >&2; exit 1
fi
echo "==> toolchain ready: host $(cargo --version | cut -d' ' -f2), guest $(/usr/bin/rustc --version | cut -d' ' -f2)"
