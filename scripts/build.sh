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
  { find src -type f -print0 | sort -z | xargs -0 sha256sum; sha256sum Cargo.toml Cargo.lock scripts/build.sh scripts/wasm_tools.sh; echo "keep_names=$keep_names"; } |
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
REPO=$PWD
# shellcheck source=scripts/wasm_tools.sh
. scripts/wasm_tools.sh
sum=$(sources_sum)
"$WORKER_BUILD" --release "$@"
if [ -z "$keep_names" ]; then
  strip_names build/index_bg.wasm
fi
echo "$sum" > "$STAMP"
