#!/usr/bin/env bash
# `npm test`: every test. Installs what it needs, runs the native tests of the pure core, builds the
# worker, then the end-to-end suites (real workerd, real registries, real clients, all on 127.0.0.1).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
bash scripts/setup.sh --test
echo "== actionlint (the deploy pipeline, .github/workflows)"
actionlint
echo "== cargo test (pure core)"
cargo test --quiet 2>&1 | grep -v '^$'
echo "== fuzz targets, briefly (scripts/fuzz.sh SECONDS runs them for longer)"
bash scripts/fuzz.sh "${FUZZ_SECONDS:-10}"
echo "== build the worker"
bash scripts/build.sh >/dev/null
ls -l build/index_bg.wasm | awk '{print "wasm: " $5 " bytes"}'
echo "== benchmark smoke run (tiny sizes, one repetition: keeps npm run bench working)"
node bench/run.mjs --smoke > test-output-bench-smoke.log 2>&1 || { tail -40 test-output-bench-smoke.log; exit 1; }
tail -3 test-output-bench-smoke.log
rm -f test-output-bench-smoke.log
echo "== end to end (node:test, Miniflare/workerd, CNCF distribution, skopeo, ctr, dockerd, Chromium; faults, hostile input, load)"
rm -rf test-output/mirror-logs
# One file at a time: the upstreams listen on fixed loopback ports.
exec node --test --test-concurrency=1 --test-timeout=900000 tests/e2e/
