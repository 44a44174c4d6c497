#!/usr/bin/env bash
# Coverage-guided fuzzing of the pure core (libFuzzer via cargo-fuzz, on the stable toolchain).
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET ...]     (default: 60 s, every target)
# Inputs found go to fuzz/work/<target> (not committed); the committed seeds are fuzz/seeds/<target>.
# Prints and writes test-output/fuzz.md: executions, corpus size and crashes per target.
# Exits 1 if any target crashed (the input is in fuzz/artifacts/<target>/).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
all=(route reference challenge scope config inputs)
targets=("${@:-${all[@]}}")
[ $# -gt 0 ] || targets=("${all[@]}")

# cargo-fuzz passes -Z flags (sanitizer coverage); RUSTC_BOOTSTRAP lets stable rustc take them.
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
cd fuzz
if ! out=$(cargo fuzz build -s none 2>&1); then echo "$out" >&2; exit 1; fi
mkdir -p ../test-output
out=${FUZZ_REPORT:-../test-output/fuzz.md}
{
  echo "| target | seconds | executions | exec/s | corpus | crashes |"
  echo "|---|---:|---:|---:|---:|---:|"
} > "$out"
failed=0
for t in "${targets[@]}"; do
  mkdir -p "work/$t" "artifacts/$t"
  log="work/$t.log"
  set +e
  cargo fuzz run -s none "$t" "work/$t" "seeds/$t" -- \
    -max_total_time="$secs" -dict=dicts/registry.dict -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -oE '^stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
  took=$(grep -oE '^stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
  corpus=$(find "work/$t" -type f | wc -l)
  crashes=$(find "artifacts/$t" -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
  echo "| $t | $secs | $execs | $took | $corpus | $crashes |" >> "$out"
  if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    failed=1
    echo "fuzz: $t failed (exit $rc); last lines of fuzz/$log:" >&2
    tail -30 "$log" >&2
  fi
done
cat "$out"
exit $failed
