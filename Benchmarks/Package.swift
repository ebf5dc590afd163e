// swift-tools-version:6.1
// Micro-benchmarks, in a package of their own so that the main build and CI never compile them.
// Run from this directory: `swift package benchmark` (see BENCHMARKS.md).
import Foundation
import PackageDescription

// A path dependency's identity is its directory's name, whatever the clone is called.
let tessera = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent.lowercased()

let package = Package(
    name: "tessera-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
    ],
    targets: [
        .executableTarget(
            name: "TesseraBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "Tessera", package: tessera),
                .product(name: "TesseraSQLite", package: tessera),
                .product(name: "TesseraRedis", package: tessera),
                .product(name: "TesseraRESP", package: tessera),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Benchmarks/TesseraBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    ]
)
