import Foundation
import Logging
import Tessera
import TesseraRESP
import TesseraRedis
import TesseraTestSupport
import Testing

/// Which Redis failures are an outage (the fallback policy applies), which an overload (503,
/// retry, no fallback) and which a fault (500): mapped once, proved here against real servers.
@Suite("Redis failure classes")
struct RedisFailureClassTests {
    // MARK: The mapping, without a server

    @Test(arguments: [
        (RedisError.connectionClosed, RedisFailureClass.unavailable),
        (.connectionFailed("127.0.0.1:1: refused"), .unavailable),
        (.protocolError("bad byte"), .unavailable),
        (.clientShutdown, .unavailable),
        (.authentication(code: "WRONGPASS", message: "invalid username-password pair"), .unavailable),
        (.timeout, .overloaded),
        (.poolAcquireTimeout, .overloaded),
        (.cancelled, .overloaded),
        (RedisError(serverMessage: "BUSY Redis is busy running a script."), .overloaded),
        (RedisError(serverMessage: "NOREPLICAS Not enough good replicas to write."), .overloaded),
        (RedisError(serverMessage: "ERR Error running script"), .server),
        (RedisError(serverMessage: "WRONGTYPE Operation against a key holding the wrong kind of value"), .server),
        (RedisError(serverMessage: "NOSCRIPT No matching script."), .server),
        (RedisError(serverMessage: "OOM command not allowed when used memory > 'maxmemory'."), .server),
        (.invalidConfiguration("no host"), .server),
        (RedisError(serverMessage: "MOVED 3999 127.0.0.1:6381"), .topology),
        (RedisError(serverMessage: "ASK 3999 127.0.0.1:6381"), .topology),
        (RedisError(serverMessage: "TRYAGAIN Multiple keys request during rehashing of slot"), .topology),
        (RedisError(serverMessage: "CLUSTERDOWN The cluster is down"), .topology),
        (RedisError(serverMessage: "MASTERDOWN Link with MASTER is down"), .topology),
        (RedisError(serverMessage: "LOADING Redis is loading the dataset in memory"), .topology),
        (RedisError(serverMessage: "READONLY You can't write against a read only replica."), .topology),
    ])
    func everyFailureHasTheClassItsPolicyNeeds(error: RedisError, expected: RedisFailureClass) {
        #expect(error.failureClass == expected, "\(error)")
    }

    @Test func storesReportAnOutageOnlyWhenRedisCannotBeReached() {
        let kind = { (error: RedisError) in StoreError(redis: error, backend: "redis", operation: "GET").kind }
        #expect(kind(.connectionFailed("refused")) == .unavailable)
        #expect(kind(RedisError(serverMessage: "CLUSTERDOWN The cluster is down")) == .unavailable)
        #expect(kind(.poolAcquireTimeout) == .overloaded)
        #expect(kind(.timeout) == .overloaded)
        #expect(kind(RedisError(serverMessage: "WRONGTYPE Operation against a key")) == .failed)
    }

    // MARK: Against a real server

    static func session(_ id: String, user: String) -> SessionRecord {
        let now = Date()
        return SessionRecord(
            id: id, userID: user, rotatedAt: now, createdAt: now, lastUsedAt: now,
            idleExpiresAt: now.addingTimeInterval(3600), absoluteExpiresAt: now.addingTimeInterval(7200)
        )
    }

    static func rotation(_ id: String, user: String) -> RotationRequest {
        RotationRequest(userID: user, sessionID: id, presentedGeneration: 1, graceWindow: 4, idleTTL: 3600, revokedAccessTTL: 900)
    }

    func thrownStoreError(_ body: () async throws -> Void) async -> StoreError? {
        do {
            try await body()
            return nil
        } catch let error as StoreError {
            return error
        } catch {
            Issue.record("expected a StoreError, got \(error)")
            return nil
        }
    }

    @Test func aBusyRedisIsOverloadedAndNeitherFallbackTakesOver() async throws {
        try await withRedisServer(options: RedisServerProcess.busyAfterOneTenthOfASecond) { server in
            let client = RedisClient(configuration: try RedisConfiguration(url: server.url))
            defer { Task { await client.shutdown() } }
            let redis = RedisTokenStore(client: client, keyPrefix: "busy:")
            try await redis.createSession(Self.session("s1", user: "alice"))
            let tokens = FallbackTokenStore(
                primary: redis, fallback: MemoryTokenStore(), probeInterval: .seconds(3600), logger: Logger(label: "test")
            )
            let limits = FailoverRateLimitStore(primary: RedisRateLimitStore(client: client, keyPrefix: "busy:"), local: MemoryRateLimitStore())

            try await server.whileBusy {
                let error = await thrownStoreError { _ = try await tokens.session(id: "s1", userID: "alice") }
                #expect(error?.kind == .overloaded, "\(String(describing: error))")
                #expect(error?.message.contains("BUSY") == true)
                await tokens.switchIfUnreachable()
                #expect(tokens.mode == .primary)
                #expect(tokens.transitions == 0)

                // A per-process budget would let every instance grant the whole limit.
                let limitError = await thrownStoreError { _ = try await limits.acquire("ip:1", limit: RateLimit(count: 1, period: 60)) }
                #expect(limitError?.kind == .overloaded)
            }
            // Once the script is gone the shared store answers again, with the session it had.
            #expect(try await tokens.session(id: "s1", userID: "alice") != nil)
            #expect(tokens.mode == .primary)
        }
    }

    @Test func aStoppedRedisIsAnOutageAndTheFallbackTakesOver() async throws {
        try await withRedisServer { server in
            var configuration = try RedisConfiguration(url: server.url)
            configuration.connectTimeout = .seconds(2)
            let client = RedisClient(configuration: configuration)
            defer { Task { await client.shutdown() } }
            let tokens = FallbackTokenStore(
                primary: RedisTokenStore(client: client, keyPrefix: "down:"), fallback: MemoryTokenStore(), probeInterval: .seconds(3600),
                logger: Logger(label: "test")
            )
            await server.stop()
            let error = await thrownStoreError { try await RedisTokenStore(client: client, keyPrefix: "down:").ping() }
            #expect(error?.kind == .unavailable)
            // The fallback may refuse to vouch for a session it never saw; the switch is the point.
            _ = try? await tokens.session(id: "s1", userID: "alice")
            #expect(tokens.mode == .fallback)
        }
    }

    @Test func aSaturatedPoolIsOverloaded() async throws {
        try await withRedisServer { server in
            var configuration = try RedisConfiguration(url: server.url)
            configuration.maximumConnections = 1
            configuration.acquireTimeout = .milliseconds(200)
            let client = RedisClient(configuration: configuration)
            defer { Task { await client.shutdown() } }
            let tokens = FallbackTokenStore(
                primary: RedisTokenStore(client: client, keyPrefix: "pool:"), fallback: MemoryTokenStore(), probeInterval: .seconds(3600),
                logger: Logger(label: "test")
            )
            // The only connection stays leased until the store's own call has given up.
            let error: StoreError? = try await client.withConnection { (_: RESPConnection) async throws(RedisError) -> StoreError? in
                await thrownStoreError { _ = try await tokens.session(id: "s1", userID: "alice") }
            }
            #expect(error?.kind == .overloaded, "\(String(describing: error))")
            #expect(tokens.mode == .primary)
            #expect(try await tokens.session(id: "s1", userID: "alice") == nil)
        }
    }

    @Test func aServerErrorIsAFailureNamedByItsCommandWithoutItsArguments() async throws {
        try await withRedisServer { server in
            let client = RedisClient(configuration: try RedisConfiguration(url: server.url))
            defer { Task { await client.shutdown() } }
            let redis = RedisTokenStore(client: client, keyPrefix: "bad:")
            let tokens = FallbackTokenStore(primary: redis, fallback: MemoryTokenStore(), probeInterval: .seconds(3600), logger: Logger(label: "test"))
            let user = "canary-user-31337"
            let sessionID = "canary-session-4242"
            try await redis.createSession(Self.session(sessionID, user: user))
            // Bad data where the session hash should be: a string instead.
            try await client.send("SET", RESPArgument("bad:{u:\(user)}:s:\(sessionID)"), "not a hash")

            let error = await thrownStoreError { _ = try await tokens.rotate(Self.rotation(sessionID, user: user)) }
            #expect(error?.kind == .failed, "\(String(describing: error))")
            #expect(error?.operation == "EVALSHA rotate")
            #expect(error?.message.contains("WRONGTYPE") == true)
            let text = String(describing: error)
            #expect(!text.contains(user) && !text.contains(sessionID), "\(text)")
            #expect(tokens.mode == .primary)
        }
    }

    @Test func aCancelledCommandEndsWithoutItsReplyAndItsConnectionIsReplaced() async throws {
        try await withRedisServer { server in
            let client = RedisClient(configuration: try RedisConfiguration(url: server.url))
            defer { Task { await client.shutdown() } }
            try await client.send("CLIENT", "SETNAME", "idle")
            let blocked = Task { () -> RedisError? in
                do {
                    _ = try await client.send(["BLPOP", "never-pushed", "60"], timeout: .seconds(90))
                    return nil
                } catch {
                    return error as? RedisError
                }
            }
            // Proof that the command is in flight: the server lists a client blocked in BLPOP.
            let observer = try await RESPConnection.connect(configuration: try RedisConfiguration(url: server.url))
            defer { Task { await observer.close() } }
            func blockedClients() async throws -> Int {
                let list = try await observer.send("CLIENT", "LIST").string ?? ""
                return list.split(whereSeparator: \.isNewline).filter { $0.contains("cmd=blpop") }.count
            }
            var inFlight = false
            for _ in 0..<600 where !inFlight {
                inFlight = try await blockedClients() == 1
                if !inFlight { try await Task.sleep(for: .milliseconds(50)) }
            }
            try #require(inFlight, "BLPOP never reached the server")

            let cancelled = ContinuousClock.now
            blocked.cancel()
            let error = await blocked.value
            // BLPOP would have blocked for a minute: the caller is released long before that.
            #expect(error == .cancelled)
            #expect(ContinuousClock.now - cancelled < .seconds(20))
            // Its connection is closed, so the reply it would have got cannot reach anyone.
            var closed = false
            for _ in 0..<600 where !closed {
                closed = try await blockedClients() == 0
                if !closed { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(closed, "the cancelled command's connection is still open")
            #expect(try await client.send("PING").string == "PONG")
        }
    }
}
