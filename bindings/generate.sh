#!/usr/bin/env bash
# Builds the library and generates its Kotlin, Swift and Python bindings:
#   target/bindings/python/   diaban.py + libdiaban_bindings.so (import diaban)
#   target/bindings/kotlin/   vn/diaban/diaban.kt
#   target/bindings/swift/    Diaban.swift, DiabanFFI.h, DiabanFFI.modulemap
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --quiet
lib=target/debug/libdiaban_bindings.so
out=target/bindings
rm -rf "$out"
for lang in python kotlin swift; do
  target/debug/uniffi-bindgen generate "$lib" --language "$lang" --out-dir "$out/$lang" --no-format >/dev/null
done
cp "$lib" "$out/python/"
echo "bindings generated in $out"
