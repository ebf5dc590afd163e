import Crypto
import Foundation
import Tessera

/// Fixed keys, so that the seed corpus (written with them) holds tokens that verify and the
/// fuzzer starts from inputs that reach the MAC and signature checks.
public enum FuzzKeys {
    public static let material = KeyMaterial(
        signingKeys: [
            KeyMaterial.SigningKey(
                id: "fuzz-key", privateKey: try! Curve25519.Signing.PrivateKey(rawRepresentation: [UInt8](repeating: 7, count: 32)),
                createdAt: Date(timeIntervalSince1970: 1_800_000_000)
            )
        ],
        refreshKey: SymmetricKey(data: [UInt8](repeating: 9, count: 32))
    )
    /// Inside every seed token's lifetime.
    public static let now = Date(timeIntervalSince1970: 1_800_000_100)
    public static let issuer = "https://fuzz.tessera.test"
}

/// The input as a string the way an HTTP body or header would hand it over.
public func fuzzText(_ start: UnsafeRawPointer?, _ count: Int) -> String {
    String(decoding: UnsafeRawBufferPointer(start: start, count: count), as: UTF8.self)
}

/// `TESSERA_FUZZ_WRITE_SEEDS=DIR` makes a harness write its seeds to DIR and exit instead of
/// fuzzing (scripts/fuzz --seeds refreshes Fuzz/Corpus this way).
public func writeSeedsIfAsked(_ seeds: [String]) {
    guard let directory = ProcessInfo.processInfo.environment["TESSERA_FUZZ_WRITE_SEEDS"] else { return }
    try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    for (index, seed) in seeds.enumerated() {
        FileManager.default.createFile(atPath: "\(directory)/seed-\(index)", contents: Data(seed.utf8))
    }
    exit(0)
}

/// libFuzzer's entry point when the program has its own `main` (SwiftPM links executables
/// with `main` aliased to `<Module>_main`, so libFuzzer's `main` is never pulled in).
@_silgen_name("LLVMFuzzerRunDriver")
func llvmFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafeRawPointer?, Int) -> CInt
) -> CInt

/// Runs libFuzzer with the process's arguments and `callback` as the harness.
public func runFuzzer(
    _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ callback: @convention(c) (UnsafeRawPointer?, Int) -> CInt
) -> CInt {
    var argc = argc
    var argv = argv
    return llvmFuzzerRunDriver(&argc, &argv, callback)
}
