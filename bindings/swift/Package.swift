// swift-tools-version:5.9
// The Swift package of Địa bàn's device core. `Sources/Diaban/Diaban.swift` and
// `DiabanFFI.xcframework` are build products: make them on a Mac with
// `bash bindings/swift/build-xcframework.sh`. Not built or tested on Linux (no Swift
// toolchain there); see README.md, "What is tested".
import PackageDescription

let package = Package(
    name: "Diaban",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "Diaban", targets: ["Diaban"]),
    ],
    targets: [
        // The Rust library (static, one slice per platform) with DiabanFFI.h and its module map.
        .binaryTarget(name: "DiabanFFI", path: "DiabanFFI.xcframework"),
        // The uniffi-generated Swift API (module `Diaban`).
        .target(name: "Diaban", dependencies: ["DiabanFFI"], path: "Sources/Diaban"),
        .testTarget(name: "DiabanTests", dependencies: ["Diaban"], path: "Tests/DiabanTests"),
    ]
)
