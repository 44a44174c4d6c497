# Sourced by scripts/build.sh and bench/controls/log-rs/build.sh: points worker-build at the local
# wasm-bindgen CLI, esbuild and wasm-opt (instead of downloading them), and strips a built wasm's
# names section. Needs REPO (the repository's root).
# esbuild's binary for this platform (its npm package installs only the host's).
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) esbuild_pkg=linux-x64 ;;
  Linux-aarch64 | Linux-arm64) esbuild_pkg=linux-arm64 ;;
  Darwin-x86_64) esbuild_pkg=darwin-x64 ;;
  Darwin-arm64) esbuild_pkg=darwin-arm64 ;;
  *) esbuild_pkg= ;;
esac
if [ -z "${ESBUILD_BIN:-}" ]; then
  if [ -n "$esbuild_pkg" ] && [ -x "$REPO/node_modules/@esbuild/$esbuild_pkg/bin/esbuild" ]; then
    ESBUILD_BIN=$REPO/node_modules/@esbuild/$esbuild_pkg/bin/esbuild
  else
    ESBUILD_BIN=$REPO/node_modules/.bin/esbuild # the package's launcher finds the binary itself
  fi
fi
export ESBUILD_BIN
export WASM_BINDGEN_BIN=${WASM_BINDGEN_BIN:-$HOME/.cargo/bin/wasm-bindgen}
export WASM_OPT_BIN=${WASM_OPT_BIN:-$REPO/node_modules/binaryen/bin/wasm-opt}
WORKER_BUILD=${WORKER_BUILD:-$HOME/.cargo/bin/worker-build}

# strip_names FILE.wasm: worker-build runs wasm-opt with --debuginfo (names kept); this strips them
# in a pass of their own, with the feature set worker-build enables.
strip_names() {
  "$WASM_OPT_BIN" "$1" -o "$1.stripped" --strip-debug \
    --enable-mutable-globals --enable-sign-ext --enable-nontrapping-float-to-int \
    --enable-bulk-memory --enable-multivalue --enable-reference-types --enable-exception-handling
  mv "$1.stripped" "$1"
}
