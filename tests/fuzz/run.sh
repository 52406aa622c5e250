#!/usr/bin/env bash
# Runs the fuzzers one after another (default: an hour each), keeps going past a crash
# (artifacts/<target>/), then minimises each corpus in place. Needs the nightly toolchain and
# cargo-fuzz: `rustup toolchain install nightly --profile minimal && cargo install cargo-fuzz`.
# Usage: bash tests/fuzz/run.sh [seconds per target] [target ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-3600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(pushed_bundle template_json cel_expression sync_frame attachment_upload units_csv)
for t in "${targets[@]}"; do
  echo "==> $t for ${seconds}s"
  cargo +nightly fuzz run "$t" -s none --fuzz-dir tests/fuzz -O -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=65536 \
    -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 2>&1 | grep -E "DONE|INFO: fuzzed|crash|timeout|oom|SUMMARY" || true
  echo "==> $t: minimising the corpus"
  cargo +nightly fuzz cmin "$t" -s none --fuzz-dir tests/fuzz -O -- -rss_limit_mb=2048 -timeout=10 2>&1 | tail -n 1
  ls "tests/fuzz/artifacts/$t" 2>/dev/null | sed "s/^/    artifact: /" || true
done
