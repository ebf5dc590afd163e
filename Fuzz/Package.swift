// swift-tools-version:6.1
// libFuzzer harnesses, in a package of their own so that the main build never compiles them.
// Build and run with scripts/fuzz (see RELIABILITY.md); it passes
// `-Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library`, and libFuzzer supplies `main`.
import Foundation
import PackageDescription

// A path dependency's identity is its directory's name, whatever the clone is called.
let tessera = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent.lowercased()

let package = Package(
    name: "tessera-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.0.0"),
    ],
    targets: [
        .target(
            name: "FuzzSupport",
            dependencies: [
                .product(name: "Tessera", package: tessera),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .executableTarget(
            name: "FuzzRESP",
            dependencies: [
                "FuzzSupport",
                .product(name: "TesseraRESP", package: tessera),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .executableTarget(name: "FuzzRefreshToken", dependencies: ["FuzzSupport", .product(name: "Tessera", package: tessera)]),
        .executableTarget(name: "FuzzAccessToken", dependencies: ["FuzzSupport", .product(name: "Tessera", package: tessera)]),
        .executableTarget(name: "FuzzOneTimeToken", dependencies: ["FuzzSupport", .product(name: "Tessera", package: tessera)]),
    ]
)
