#!/usr/bin/env bash
# Builds control W offline, as scripts/build.sh builds edgemirror (the same local tools, the names
# section stripped the same way). Output: build/ beside this script.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$here/../../.." && pwd)"
# shellcheck source=../../../scripts/wasm_tools.sh
. "$REPO/scripts/wasm_tools.sh"
cd "$here"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$here/target}
"$WORKER_BUILD" --release
strip_names build/index_bg.wasm
