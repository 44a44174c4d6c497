#!/usr/bin/env bash
# Builds the worker (Rust → wasm → build/worker/shim.mjs) offline: worker-build is pointed at the
# local wasm-bindgen CLI, esbuild and wasm-opt instead of downloading them.
#   --if-stale: do nothing when build/ was made from exactly these sources (src/, Cargo.toml,
#               Cargo.lock, this script): `npm start` then serves in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
STAMP=build/.sources.sha256
sources_sum() {
  { find src -type f -print0 | sort -z | xargs -0 sha256sum; sha256sum Cargo.toml Cargo.lock scripts/build.sh; } |
    sha256sum | cut -d' ' -f1
}
if [ "${1:-}" = "--if-stale" ]; then
  shift
  if [ -f build/worker/shim.mjs ] && [ -f build/index_bg.wasm ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$(sources_sum)" ]; then
    echo "[build] build/ is up to date with the sources and lockfile"
    exit 0
  fi
fi
# esbuild's binary for this platform (its npm package installs only the host's).
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) esbuild_pkg=linux-x64 ;;
  Linux-aarch64 | Linux-arm64) esbuild_pkg=linux-arm64 ;;
  Darwin-x86_64) esbuild_pkg=darwin-x64 ;;
  Darwin-arm64) esbuild_pkg=darwin-arm64 ;;
  *) esbuild_pkg= ;;
esac
if [ -z "${ESBUILD_BIN:-}" ]; then
  if [ -n "$esbuild_pkg" ] && [ -x "node_modules/@esbuild/$esbuild_pkg/bin/esbuild" ]; then
    ESBUILD_BIN=$PWD/node_modules/@esbuild/$esbuild_pkg/bin/esbuild
  else
    ESBUILD_BIN=$PWD/node_modules/.bin/esbuild # the package's launcher finds the binary itself
  fi
fi
export ESBUILD_BIN
export WASM_BINDGEN_BIN=${WASM_BINDGEN_BIN:-$HOME/.cargo/bin/wasm-bindgen}
export WASM_OPT_BIN=${WASM_OPT_BIN:-$PWD/node_modules/binaryen/bin/wasm-opt}
sum=$(sources_sum)
"${WORKER_BUILD:-$HOME/.cargo/bin/worker-build}" --release "$@"
echo "$sum" > "$STAMP"
