import Foundation
import Tessera
import TesseraRESP
import TesseraTestSupport
import Testing

@testable import TesseraRedis

/// How long the revocation view takes to reload next to a million sessions: from the denial
/// index, and by SCAN as before it. A figure for BENCHMARKS.md, printed, not asserted; it runs
/// only with TESSERA_RESYNC_FIGURES=1 (seeding takes a minute):
///
///     TESSERA_RESYNC_FIGURES=1 swift test --skip-build --filter RevocationViewResyncFigures
@Suite("Figures: revocation view reload", .enabled(if: ProcessInfo.processInfo.environment["TESSERA_RESYNC_FIGURES"] == "1"))
struct RevocationViewResyncFigures {
    @Test func reloadAtAMillionSessionsAndTenThousandDenials() async throws {
        let sessions = Int(ProcessInfo.processInfo.environment["TESSERA_RESYNC_SESSIONS"] ?? "") ?? 1_000_000
        let denials = 10_000
        try await withRedisServer { server in
            let client = try RedisClient(url: server.url)
            defer { Task { await client.shutdown() } }
            // Sessions shaped like layout 2, one user each, written with redis-cli --pipe.
            let template = FileManager.default.temporaryDirectory.appendingPathComponent("resync-template-\(UUID().uuidString)")
            let expiry = Int64((Date().timeIntervalSince1970 + 86400) * 1000)
            try "g\n1\nc\n\(expiry - 86_400_000)\nl\n\(expiry - 86_400_000)\ni\n\(expiry)\na\n\(expiry + 1000)\np\n127.0.0.1\n"
                .write(to: template, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(at: template) }
            let seed = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("scripts/bench-lib/seed.py").path
            let shell = Process()
            shell.executableURL = URL(fileURLWithPath: "/bin/sh")
            shell.arguments = ["-c", "python3 '\(seed)' '\(template.path)' \(sessions) | redis-cli -h 127.0.0.1 -p \(server.port) --pipe >/dev/null"]
            try shell.run()
            shell.waitUntilExit()
            #expect(shell.terminationStatus == 0)

            let store = RedisTokenStore(client: client, keyPrefix: "tessera:")
            let until = Date().addingTimeInterval(900)
            for n in 0..<denials { try await store.deny(.session("s\(n)"), userID: "denied-\(n)", until: until) }
            let keys = try await client.send(["DBSIZE"]).int ?? 0

            let view = RevocationView(client: client, keyPrefix: "tessera:")
            let clock = ContinuousClock()
            var scanned = 0
            let scan = try await clock.measure { scanned = try await view.loadByScan().count }
            var indexed = 0
            let index = try await clock.measure { indexed = try await view.loadIndex() }
            #expect(scanned == denials && indexed == denials)
            print(
                "resync figures: \(keys) keys (\(sessions) sessions, \(denials) denials): from the index \(index), "
                    + "by SCAN \(scan) (ratio \(String(format: "%.1f", Double(scan.components.attoseconds / 1_000_000_000 + scan.components.seconds * 1_000_000_000) / Double(index.components.attoseconds / 1_000_000_000 + index.components.seconds * 1_000_000_000)))x)"
            )
        }
    }
}
