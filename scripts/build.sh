#!/usr/bin/env bash
# Builds the worker (Rust → wasm → build/worker/shim.mjs) offline: worker-build is pointed at the
# local wasm-bindgen CLI, esbuild and wasm-opt instead of downloading them.
#   --if-stale: do nothing when build/ was made from exactly these sources (src/, Cargo.toml,
#               Cargo.lock, this script): `npm start` then serves in seconds.
#   --keep-names: keep the wasm names section (function names in stack traces and CPU profiles).
#               Without it the section is stripped after worker-build: 58 KB of the gzipped
#               bundle, which names functions only in a trap's stack trace (a panic's message and
#               place are logged before it by console_error_panic_hook either way).
set -euo pipefail
cd "$(dirname "$0")/.."
STAMP=build/.sources.sha256
sources_sum() {
  { find src -type f -print0 | sort -z | xargs -0 sha256sum; sha256sum Cargo.toml Cargo.lock scripts/build.sh; echo "keep_names=$keep_names"; } |
    sha256sum | cut -d' ' -f1
}
keep_names=
if [ "${1:-}" = "--keep-names" ]; then
  keep_names=1
  shift
fi
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
if [ -z "$keep_names" ]; then
  # worker-build runs wasm-opt with --debuginfo (names kept); strip them in a pass of their own,
  # with the feature set worker-build enables.
  "$WASM_OPT_BIN" build/index_bg.wasm -o build/index_bg.stripped.wasm --strip-debug \
    --enable-mutable-globals --enable-sign-ext --enable-nontrapping-float-to-int \
    --enable-bulk-memory --enable-multivalue --enable-reference-types --enable-exception-handling
  mv build/index_bg.stripped.wasm build/index_bg.wasm
fi
echo "$sum" > "$STAMP"
