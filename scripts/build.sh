#!/usr/bin/env bash
# Builds the worker (Rust → wasm → build/worker/shim.mjs) offline: worker-build is pointed at the
# local wasm-bindgen CLI, esbuild and wasm-opt instead of downloading them.
set -euo pipefail
cd "$(dirname "$0")/.."
export WASM_BINDGEN_BIN=${WASM_BINDGEN_BIN:-$HOME/.cargo/bin/wasm-bindgen}
export ESBUILD_BIN=${ESBUILD_BIN:-$PWD/node_modules/@esbuild/linux-x64/bin/esbuild}
export WASM_OPT_BIN=${WASM_OPT_BIN:-$PWD/node_modules/binaryen/bin/wasm-opt}
exec "${WORKER_BUILD:-$HOME/.cargo/bin/worker-build}" --release "$@"
