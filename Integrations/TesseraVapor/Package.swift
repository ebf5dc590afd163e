// swift-tools-version:6.2
import PackageDescription

// A package of its own, so the main package's build does not grow by Vapor. It uses only the
// core and the remote verifier of the root package: no Hummingbird, no store driver.
let package = Package(
    name: "TesseraVapor",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "TesseraVapor", targets: ["TesseraVapor"])
    ],
    dependencies: [
        .package(name: "tessera", path: "../.."),
        .package(url: "https://github.com/vapor/vapor.git", from: "4.0.0"),
    ],
    targets: [
        .target(
            name: "TesseraVapor",
            dependencies: [
                .product(name: "Tessera", package: "tessera"),
                .product(name: "TesseraRemote", package: "tessera"),
                .product(name: "Vapor", package: "vapor"),
            ]
        ),
        .testTarget(
            name: "TesseraVaporTests",
            dependencies: [
                "TesseraVapor",
                .product(name: "Tessera", package: "tessera"),
                .product(name: "XCTVapor", package: "vapor"),
            ]
        ),
    ]
)
