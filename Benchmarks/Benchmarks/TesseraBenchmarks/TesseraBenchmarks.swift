import Benchmark
import Foundation
import NIOCore
import Tessera
import TesseraRESP
import TesseraRedis
import TesseraSQLite

// Micro-benchmarks of the hot paths. The Redis ones run when TESSERA_BENCH_REDIS_URL names a
// redis-server to use (scripts/bench --micro starts one on loopback); they are skipped otherwise.

enum Fixture {
    static let keys = KeyMaterial.generate()
    static let codec = AccessTokenCodec(keys: keys, issuer: "tessera")
    static let now = Date()
    static let claims = AccessClaims(
        iss: "tessera", sub: "7d2f1c7e-2b7e-4b61-9d0e-0c1f4d3a9b11", sid: SecureRandom.identifier(byteCount: 16),
        jti: SecureRandom.identifier(byteCount: 16), iat: Int64(now.timeIntervalSince1970), exp: Int64(now.timeIntervalSince1970) + 900
    )
    static let token = try! codec.sign(claims)
    static let redisURL = ProcessInfo.processInfo.environment["TESSERA_BENCH_REDIS_URL"]

    /// The arguments `RedisTokenStore.rotate` sends.
    static let rotateCommand: [RESPArgument] = [
        "EVALSHA", "3f786850e387550fdab836ed7e6dc881de23001b", "3",
        "tessera:{u:7d2f1c7e-2b7e-4b61-9d0e-0c1f4d3a9b11}:s:Q2hhbmdlIG1lIHBsZWFzZQ",
        "tessera:{u:7d2f1c7e-2b7e-4b61-9d0e-0c1f4d3a9b11}:sessions",
        "tessera:{u:7d2f1c7e-2b7e-4b61-9d0e-0c1f4d3a9b11}:deny:sid:Q2hhbmdlIG1lIHBsZWFzZQ",
        "1763900000.123456", "7d2f1c7e-2b7e-4b61-9d0e-0c1f4d3a9b11", "42", "10.0", "1764504800.123456", "1763900900.123456",
        "Mozilla/5.0 (X11; Linux x86_64)", "127.0.0.1", "Q2hhbmdlIG1lIHBsZWFzZQ", "tessera:revocations",
    ]

    /// A session hash as HGETALL answers it in RESP3, and rotate's reply around it.
    static let sessionFields: [(String, String)] = [
        ("uid", "7d2f1c7e-2b7e-4b61-9d0e-0c1f4d3a9b11"), ("sid", "Q2hhbmdlIG1lIHBsZWFzZQ"), ("gen", "42"),
        ("rot", "1763900000.123456"), ("cre", "1763800000.5"), ("last", "1763900000.123456"), ("idle", "1764504800.123456"),
        ("abs", "1766400000.5"), ("dev", "laptop"), ("ua", "Mozilla/5.0 (X11; Linux x86_64)"), ("ip", "127.0.0.1"),
    ]
    static func bulk(_ s: String) -> String { "$\(s.utf8.count)\r\n\(s)\r\n" }
    static let hgetallReply = "%\(sessionFields.count)\r\n" + sessionFields.map { bulk($0.0) + bulk($0.1) }.joined()
    static let rotateReply = "*2\r\n" + bulk("rotated") + "*\(sessionFields.count * 2)\r\n" + sessionFields.map { bulk($0.0) + bulk($0.1) }.joined()
    static let mgetReply = "*2\r\n$-1\r\n$-1\r\n"

    static func session(id: String = SecureRandom.identifier(byteCount: 16), user: String = "bench-user") -> SessionRecord {
        let now = Date()
        return SessionRecord(
            id: id, userID: user, rotatedAt: now, createdAt: now, lastUsedAt: now,
            idleExpiresAt: now.addingTimeInterval(3600), absoluteExpiresAt: now.addingTimeInterval(86400)
        )
    }

    /// Rotates one session `iterations` times in a row, as a client refreshing would.
    static func rotate(_ store: any TokenStore, _ benchmark: Benchmark) async throws {
        let session = session()
        try await store.createSession(session)
        var generation: Int64 = 1
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            let outcome = try await store.rotate(
                RotationRequest(userID: session.userID, sessionID: session.id, presentedGeneration: generation, graceWindow: 10, idleTTL: 3600, revokedAccessTTL: 900)
            )
            guard case .rotated = outcome else { fatalError("rotation failed: \(outcome)") }
            generation += 1
        }
        benchmark.stopMeasurement()
    }
}

/// One Redis client, a plain store, and a store with a running, synced revocation view.
final class RedisFixture: Sendable {
    let client: RedisClient
    let plain: RedisTokenStore
    let viewed: RedisTokenStore
    let view: RevocationView

    static let shared: RedisFixture? = Fixture.redisURL.flatMap { try? RedisFixture(url: $0) }

    init(url: String) throws {
        client = try RedisClient(url: url)
        plain = RedisTokenStore(client: client, keyPrefix: "bench:")
        view = RevocationView(client: client, keyPrefix: "bench:")
        viewed = RedisTokenStore(client: client, keyPrefix: "bench:", revocations: view)
        let view = self.view
        Task { try await view.run() }
    }

    func synced() async throws -> RedisFixture {
        let deadline = ContinuousClock.now + .seconds(10)
        while !view.isTrusted {
            guard ContinuousClock.now < deadline else { fatalError("revocation view did not sync") }
            try await Task.sleep(for: .milliseconds(10))
        }
        return self
    }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal], warmupIterations: 10, maxDuration: .seconds(3), maxIterations: 1_000_000
    )

    // MARK: JWT

    Benchmark("JWT sign (Ed25519)") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try Fixture.codec.sign(Fixture.claims)) }
    }
    Benchmark("JWT verify (Ed25519)") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try Fixture.codec.verify(Fixture.token, now: Fixture.now)) }
    }
    Benchmark("JWT verify, cached") { benchmark in
        _ = try Fixture.codec.verifyCached(Fixture.token, now: Fixture.now)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { blackHole(try Fixture.codec.verifyCached(Fixture.token, now: Fixture.now)) }
    }

    // MARK: RESP

    Benchmark("RESP encode EVALSHA rotate (15 args)") { benchmark in
        let allocator = ByteBufferAllocator()
        for _ in benchmark.scaledIterations { blackHole(RESPCommandEncoder.encode(Fixture.rotateCommand, allocator: allocator)) }
    }
    for (name, text) in [("HGETALL session (RESP3 map, 11 fields)", Fixture.hgetallReply), ("rotate reply", Fixture.rotateReply), ("MGET 2 nulls", Fixture.mgetReply)] {
        Benchmark("RESP decode \(name)") { benchmark in
            let bytes = ByteBuffer(string: text)
            var decoder = RESPValueDecoder()
            for _ in benchmark.scaledIterations {
                var buffer = bytes
                blackHole(try decoder.decode(buffer: &buffer))
            }
        }
    }

    // MARK: Refresh rotation per store

    Benchmark("Refresh rotation, memory store") { benchmark in
        try await Fixture.rotate(MemoryTokenStore(), benchmark)
    }
    Benchmark("Refresh rotation, SQLite store") { benchmark in
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try await Fixture.rotate(try SQLiteDatabase(path: directory.appendingPathComponent("tokens.db").path).tokenStore(), benchmark)
    }
    if let redis = RedisFixture.shared {
        Benchmark("Refresh rotation, Redis store") { benchmark in
            try await Fixture.rotate(redis.plain, benchmark)
        }

        // MARK: Revocation check

        Benchmark("Revocation check, local view") { benchmark in
            let redis = try await redis.synced()
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                blackHole(try await redis.viewed.isRevoked(tokenID: Fixture.claims.jti, sessionID: Fixture.claims.sid, userID: Fixture.claims.sub))
            }
        }
        // A deny written through one client, then waited for in the view (its own write is not
        // recorded locally: `plain` has no view), against the write alone.
        Benchmark("Revocation write (deny script)") { benchmark in
            for index in benchmark.scaledIterations {
                try await redis.plain.deny(.tokenID("w\(index)-\(UUID().uuidString)"), userID: "bench-user", until: Date().addingTimeInterval(60))
            }
        }
        Benchmark("Revocation write + seen by the view (pub/sub)") { benchmark in
            let redis = try await redis.synced()
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                let jti = UUID().uuidString
                try await redis.plain.deny(.tokenID(jti), userID: "bench-user", until: Date().addingTimeInterval(60))
                let deadline = ContinuousClock.now + .seconds(2)
                while redis.view.isRevoked("bench:{u:bench-user}:deny:jti:\(jti)") != true {
                    guard ContinuousClock.now < deadline else { fatalError("revocation not seen within 2 s") }
                    await Task.yield()
                }
            }
        }
        Benchmark("Revocation check, Redis MGET") { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(try await redis.plain.isRevoked(tokenID: Fixture.claims.jti, sessionID: Fixture.claims.sid, userID: Fixture.claims.sub))
            }
        }
    }
}
