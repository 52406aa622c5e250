#!/usr/bin/env bash
# Builds the Swift package's binary parts on a Mac (Xcode and rustup needed):
#   bindings/swift/DiabanFFI.xcframework   static library for iOS, the iOS simulator and macOS
#   bindings/swift/Sources/Diaban/Diaban.swift   the generated Swift API
# Then `swift build` / `swift test` in bindings/swift, or add the package to an Xcode project.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(uname)" = Darwin ] || { echo "build-xcframework.sh needs macOS with Xcode" >&2; exit 1; }

targets=(aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios aarch64-apple-darwin x86_64-apple-darwin)
rustup target add "${targets[@]}"
for t in "${targets[@]}"; do
  cargo rustc --release -p diaban-bindings --lib --target "$t" --crate-type staticlib
done

# Swift sources and the C header, generated from the host build of the same crate.
bash bindings/generate.sh
out=target/xcframework
rm -rf "$out" bindings/swift/DiabanFFI.xcframework
mkdir -p "$out/headers" "$out/ios-sim" "$out/macos"
cp target/bindings/swift/DiabanFFI.h "$out/headers/"
cp target/bindings/swift/DiabanFFI.modulemap "$out/headers/module.modulemap"
cp target/bindings/swift/Diaban.swift bindings/swift/Sources/Diaban/Diaban.swift

lib=libdiaban_bindings.a
lipo -create target/aarch64-apple-ios-sim/release/$lib target/x86_64-apple-ios/release/$lib -output "$out/ios-sim/$lib"
lipo -create target/aarch64-apple-darwin/release/$lib target/x86_64-apple-darwin/release/$lib -output "$out/macos/$lib"
xcodebuild -create-xcframework \
  -library target/aarch64-apple-ios/release/$lib -headers "$out/headers" \
  -library "$out/ios-sim/$lib" -headers "$out/headers" \
  -library "$out/macos/$lib" -headers "$out/headers" \
  -output bindings/swift/DiabanFFI.xcframework
echo "bindings/swift is ready: swift test --package-path bindings/swift"
