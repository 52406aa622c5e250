#!/usr/bin/env bash
# Runs the fuzzers (default: an hour each), keeps going past a crash (artifacts/<target>/),
# then minimises each corpus in place. Needs the nightly toolchain and cargo-fuzz:
# `rustup toolchain install nightly --profile minimal && cargo install cargo-fuzz`.
#
# Usage: bash tests/fuzz/run.sh [seconds per target] [target ...]
# DIABAN_FUZZ_JOBS (default 1) fuzzers run side by side. DIABAN_FUZZ_OUT (default tests/fuzz
# of this checkout) is where the corpora and artifacts are kept: fuzz a snapshot (a git
# worktree) while you edit, and keep what it finds in your checkout.
set -uo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-3600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(pushed_bundle template_json cel_expression sync_frame attachment_upload units_csv)
out=${DIABAN_FUZZ_OUT:-$PWD/tests/fuzz}
jobs=${DIABAN_FUZZ_JOBS:-1}
cargo +nightly fuzz build -s none --fuzz-dir tests/fuzz -O || exit 1

fuzz() {
  local t=$1
  mkdir -p "$out/corpus/$t" "$out/artifacts/$t"
  echo "==> $t for ${seconds}s"
  cargo +nightly fuzz run "$t" -s none --fuzz-dir tests/fuzz -O "$out/corpus/$t" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=65536 \
    -artifact_prefix="$out/artifacts/$t/" -print_final_stats=1 >"$out/artifacts/$t.log" 2>&1
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb|DONE|SUMMARY" "$out/artifacts/$t.log" | sed "s/^/    $t: /"
  echo "==> $t: minimising the corpus"
  cargo +nightly fuzz cmin "$t" -s none --fuzz-dir tests/fuzz -O "$out/corpus/$t" -- -rss_limit_mb=2048 -timeout=10 2>&1 |
    grep -E "MERGE-OUTER: [0-9]+ new files" | sed "s/^/    $t: /"
  ls "$out/artifacts/$t" | sed "s/^/    $t artifact: /"
}

running=0
for t in "${targets[@]}"; do
  fuzz "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n
    running=$((running - 1))
  fi
done
wait
