import NIOCore
import TesseraTestSupport
import Testing

@testable import TesseraRESP

/// Client settings for tests: short timeouts and backoff so failure paths run quickly.
func testConfiguration(_ server: RedisServerProcess, url: String? = nil) throws -> RedisConfiguration {
    var configuration = try RedisConfiguration(url: url ?? server.url)
    configuration.commandTimeout = .seconds(5)
    configuration.connectTimeout = .seconds(2)
    configuration.acquireTimeout = .seconds(2)
    configuration.reconnectBaseDelay = .milliseconds(20)
    configuration.reconnectMaximumDelay = .milliseconds(200)
    configuration.maximumConnections = 4
    return configuration
}

/// Runs `body` with a client, always shutting the client down afterwards.
@discardableResult
func withClient<T>(
    _ configuration: RedisConfiguration,
    _ body: (RedisClient) async throws -> T
) async throws -> T {
    let client = RedisClient(configuration: configuration)
    do {
        let result = try await body(client)
        await client.shutdown()
        return result
    } catch {
        await client.shutdown()
        throw error
    }
}

/// Expects a RedisError matching `predicate`, returning how long the call took.
@discardableResult
func expectRedisError(
    _ what: String,
    _ predicate: (RedisError) -> Bool,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> Void
) async -> Duration {
    let clock = ContinuousClock()
    let start = clock.now
    do {
        try await body()
        Issue.record("\(what): expected an error, got success", sourceLocation: sourceLocation)
    } catch let error as RedisError {
        #expect(predicate(error), "\(what): unexpected \(error)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("\(what): not a RedisError: \(error)", sourceLocation: sourceLocation)
    }
    return clock.now - start
}

// Serialized: each test owns a redis-server, and the timing-related tests should not fight
// the rest of the suite for the two cores.
@Suite("Redis client against a real redis-server", .serialized)
struct RedisIntegrationTests {
    @Test("round trips: strings, expiry, hash (RESP3 map), set, doubles, nil")
    func roundTrips() async throws {
        try await withRedisServer { server throws in
            try await withClient(try testConfiguration(server)) { client throws in
                #expect(try await client.send("PING") == .simpleString("PONG"))
                #expect(try await client.send("SET", "k", "v") == .simpleString("OK"))
                #expect(try await client.send("GET", "k").string == "v")
                #expect(try await client.send("GET", "missing").isNull)
                #expect(try await client.send("EXPIRE", "k", 100).int == 1)
                let ttl = try await client.send("TTL", "k").int ?? -1
                #expect((1...100).contains(ttl))
                #expect(try await client.send("DEL", "k", "missing").int == 1)
                #expect(try await client.send("TTL", "k").int == -2)

                let binary = ByteBuffer(bytes: [0, 255, 13, 10, 1])
                try await client.send("SET", "bin", RESPArgument(binary))
                #expect(try await client.send("GET", "bin").bytes == binary)

                #expect(try await client.send("HSET", "h", "a", "1", "b", "2").int == 2)
                let hash = try await client.send("HGETALL", "h")
                guard case .map = hash else {
                    Issue.record("HGETALL should be a RESP3 map, got \(hash)")
                    return
                }
                #expect(hash.stringMap == ["a": "1", "b": "2"])
                #expect(try await client.send("HGETALL", "nohash").stringMap == [:])

                #expect(try await client.send("SADD", "s", "x", "y", "x").int == 2)
                let members = try await client.send("SMEMBERS", "s")
                guard case .set(let elements) = members else {
                    Issue.record("SMEMBERS should be a RESP3 set, got \(members)")
                    return
                }
                #expect(Set(elements.compactMap(\.string)) == ["x", "y"])

                #expect(try await client.send("INCRBYFLOAT", "f", RESPArgument(1.5)).double == 1.5)
                #expect(try await client.send("INCRBYFLOAT", "f", "0.25").double == 1.75)
                try await client.send("ZADD", "z", "2.5", "m")
                #expect(try await client.send("ZSCORE", "z", "m") == .double(2.5))
                #expect(try await client.send("ZSCORE", "z", "none").isNull)
                #expect(try await client.send("EXISTS", "s").bool == true)
            }
        }
    }

    @Test("1,000 pipelined commands are answered in order")
    func pipelineOrder() async throws {
        try await withRedisServer { server throws in
            // 50 tasks queue for 4 connections: on a loaded machine the last ones wait longer
            // than the 2 s other tests use to prove a dead server fails fast.
            var configuration = try testConfiguration(server)
            configuration.acquireTimeout = .seconds(30)
            try await withClient(configuration) { client throws in
                let commands: [[RESPArgument]] = (1...1000).flatMap { i -> [[RESPArgument]] in
                    [["INCR", "counter"], ["ECHO", "\(i)"]]
                }
                let replies = try await client.pipeline(commands)
                #expect(replies.count == 2000)
                for i in 1...1000 {
                    #expect(replies[2 * (i - 1)] == .integer(Int64(i)))
                    #expect(replies[2 * (i - 1) + 1].string == "\(i)")
                }
                // Many tasks at once through a small pool.
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for _ in 0..<50 {
                        group.addTask {
                            for _ in 0..<20 { try await client.send("INCR", "parallel") }
                        }
                    }
                    for try await _ in group {}
                }
                #expect(try await client.send("GET", "parallel").int == 1000)
            }
        }
    }

    @Test("an error reply does not break the connection")
    func errorThenGoodCommand() async throws {
        try await withRedisServer { server throws in
            let connection = try await RESPConnection.connect(configuration: try testConfiguration(server))
            await expectRedisError("unknown command", { if case .err = $0 { return true } else { return false } }) {
                try await connection.send(["NOSUCHCOMMAND", "x"])
            }
            #expect(try await connection.send(["PING"]) == .simpleString("PONG"))
            try await connection.send(["SET", "str", "x"])
            await expectRedisError("wrong type", { if case .wrongType = $0 { return true } else { return false } }) {
                try await connection.send(["LPUSH", "str", "y"])
            }
            let replies = try await connection.pipeline([["PING"], ["INCR", "str"], ["ECHO", "after"]])
            #expect(replies[0] == .simpleString("PONG"))
            #expect(replies[1].error?.isServerError == true)
            #expect(replies[2].string == "after")
            #expect(connection.isActive)
            await connection.close()
        }
    }

    @Test("EVALSHA falls back on NOSCRIPT, also after SCRIPT FLUSH")
    func scripts() async throws {
        try await withRedisServer { server throws in
            try await withClient(try testConfiguration(server)) { client throws in
                let script = RedisScript("return redis.call('INCRBY', KEYS[1], ARGV[1])")
                #expect(try await client.send("SCRIPT", "EXISTS", RESPArgument(script.sha1)) == .array([.integer(0)]))
                #expect(try await client.evalScript(script, keys: ["n"], arguments: ["5"]) == .integer(5))
                #expect(try await client.evalScript(script, keys: ["n"], arguments: ["2"]) == .integer(7))
                // The locally computed SHA1 is the one the server uses.
                #expect(try await client.send("SCRIPT", "LOAD", RESPArgument(script.source)).string == script.sha1)
                try await client.send("SCRIPT", "FLUSH")
                #expect(try await client.evalScript(script, keys: ["n"], arguments: ["1"]) == .integer(8))
                // Errors raised by the script itself come back typed, not as a retry loop.
                let failing = RedisScript("return redis.error_reply('WRONGTYPE nope')")
                await expectRedisError("script error", { if case .wrongType = $0 { return true } else { return false } }) {
                    try await client.evalScript(failing)
                }
            }
        }
    }

    @Test("reconnects after CLIENT KILL from another connection")
    func reconnectAfterClientKill() async throws {
        try await withRedisServer { server throws in
            let configuration = try testConfiguration(server)
            try await withClient(configuration) { client throws in
                let firstID = try await client.send("CLIENT", "ID").int
                let admin = try await RESPConnection.connect(configuration: configuration)
                let killed = try await admin.send(["CLIENT", "KILL", "TYPE", "normal"]).int ?? 0
                #expect(killed >= 1)
                // The pool notices the closed idle connection (or the unsent command) and
                // opens a new one; give the EOF a moment to arrive but do not require it.
                try await Task.sleep(for: .milliseconds(50))
                let secondID = try await client.send("CLIENT", "ID").int
                #expect(firstID != secondID)
                #expect(try await client.send("PING") == .simpleString("PONG"))
                await admin.close()
            }
        }
    }

    @Test("keep-alive: the minimum stays open, and connections killed while unused are replaced without a command")
    func keepAliveKeepsTheMinimumOpen() async throws {
        try await withRedisServer { server throws in
            var configuration = try testConfiguration(server)
            configuration.minimumConnections = 2
            configuration.keepAliveInterval = .milliseconds(200)
            try await withClient(configuration) { client throws in
                #expect(try await client.send("PING") == .simpleString("PONG"))
                let admin = try await RESPConnection.connect(configuration: configuration)
                let adminID = try await admin.send(["CLIENT", "ID"]).int ?? -1
                /// The pool's connections, as the server sees them (every client but `admin`).
                func poolConnections() async throws -> [Int] {
                    let list = String(buffer: try await admin.send(["CLIENT", "LIST", "TYPE", "normal"]).bytes ?? ByteBuffer())
                    return list.split(separator: "\n").compactMap { line in
                        line.split(separator: " ").first { $0.hasPrefix("id=") }.flatMap { Int($0.dropFirst(3)) }
                    }.filter { $0 != adminID }
                }
                func waitFor(_ what: String, _ condition: ([Int]) -> Bool) async throws -> [Int] {
                    let deadline = ContinuousClock.now + .seconds(10)
                    while ContinuousClock.now < deadline {
                        let ids = try await poolConnections()
                        if condition(ids) { return ids }
                        try await Task.sleep(for: .milliseconds(50))
                    }
                    Issue.record("not within 10 s: \(what)")
                    return []
                }
                let warm = try await waitFor("two warm connections") { $0.count == 2 }
                for id in warm { _ = try await admin.send(["CLIENT", "KILL", "ID", RESPArgument(id)]) }
                // No command is sent: the keep-alive finds them gone and opens two new ones.
                let replaced = try await waitFor("two new connections") { ids in ids.count == 2 && Set(ids).isDisjoint(with: warm) }
                #expect(replaced.count == 2)
                #expect(try await client.send("PING") == .simpleString("PONG"))
                await admin.close()
            }
        }
    }

    @Test("server down: commands fail fast with a connection error; after a restart they work again")
    func serverRestart() async throws {
        try await withRedisServer { server throws in
            var configuration = try testConfiguration(server)
            configuration.commandTimeout = .seconds(10)
            configuration.acquireTimeout = .seconds(10)
            try await withClient(configuration) { client throws in
                let script = RedisScript("return 'still here'")
                #expect(try await client.evalScript(script).string == "still here")
                await server.stop()

                // Bound far below the 10 s timeouts: "fails fast", not a performance check.
                for attempt in 0..<3 {
                    let elapsed = await expectRedisError("server down #\(attempt)", { $0.isConnectionError }) {
                        try await client.send("PING")
                    }
                    #expect(elapsed < .seconds(3))
                }

                try await server.start()
                let clock = ContinuousClock()
                let deadline = clock.now + .seconds(10)
                var recovered = false
                while clock.now < deadline {
                    if (try? await client.send("PING")) == .simpleString("PONG") {
                        recovered = true
                        break
                    }
                    try await Task.sleep(for: .milliseconds(50))
                }
                #expect(recovered)
                // The restarted server has an empty script cache: EVALSHA must recover.
                #expect(try await client.evalScript(script).string == "still here")
            }
        }
    }

    @Test("nothing listening: connect fails fast with a connection error")
    func nothingListening() async throws {
        let server = try RedisServerProcess()  // configured but never started: its port is free
        var configuration = try RedisConfiguration(url: server.url)
        configuration.commandTimeout = .seconds(10)
        let elapsed = await expectRedisError("refused", { if case .connectionFailed = $0 { return true } else { return false } }) {
            _ = try await RESPConnection.connect(configuration: configuration)
        }
        #expect(elapsed < .seconds(3))
        try await withClient(configuration) { client throws in
            await expectRedisError("pool, refused", { $0.isConnectionError }) { try await client.send("PING") }
            // Second attempt lands in the backoff window and must not wait for it.
            let fast = await expectRedisError("pool, backing off", { $0.isConnectionError }) { try await client.send("PING") }
            #expect(fast < .seconds(3))
        }
    }

    @Test("AUTH with an ACL user from the URL; wrong password is a typed auth error")
    func aclAuthentication() async throws {
        let options = RedisServerProcess.Options(
            requirePassword: "adminpass",
            extraConfiguration: ["user app on >s3cr@t:% ~* +@all"]
        )
        try await withRedisServer(options: options) { server throws in
            let url = "redis://app:s3cr%40t%3A%25@127.0.0.1:\(server.port)/2"
            try await withClient(try testConfiguration(server, url: url)) { client throws in
                #expect(try await client.send("ACL", "WHOAMI").string == "app")
                try await client.send("SET", "indb2", "1")
                #expect(try await client.send("CLIENT", "INFO").string?.contains("db=2") == true)
            }
            try await withClient(try testConfiguration(server, url: "redis://:adminpass@127.0.0.1:\(server.port)")) { client throws in
                #expect(try await client.send("ACL", "WHOAMI").string == "default")
                #expect(try await client.send("GET", "indb2").isNull)  // db 0
            }
            try await withClient(try testConfiguration(server, url: "redis://app:wrong@127.0.0.1:\(server.port)")) { client throws in
                await expectRedisError("wrong password", { if case .authentication = $0 { return true } else { return false } }) {
                    try await client.send("PING")
                }
            }
            try await withClient(try testConfiguration(server)) { client throws in
                await expectRedisError("no password", { if case .authentication = $0 { return true } else { return false } }) {
                    try await client.send("PING")
                }
            }
        }
    }

    @Test("RESP2 fallback when HELLO is unavailable, and RESP2 forced by the URL")
    func resp2Fallback() async throws {
        let options = RedisServerProcess.Options(requirePassword: "pw", extraConfiguration: ["rename-command HELLO \"\""])
        try await withRedisServer(options: options) { server throws in
            let configuration = try testConfiguration(server, url: "redis://:pw@127.0.0.1:\(server.port)/1")
            let connection = try await RESPConnection.connect(configuration: configuration)
            #expect(connection.protocolVersion == .resp2)
            try await connection.send(["HSET", "h", "a", "1"])
            let hash = try await connection.send(["HGETALL", "h"])
            #expect(hash == .array(["a", "1"]))  // flat array in RESP2
            #expect(hash.stringMap == ["a": "1"])
            #expect(try await connection.send(["GET", "nothing"]).isNull)
            await expectRedisError("error in RESP2", { if case .err = $0 { return true } else { return false } }) {
                try await connection.send(["NOPE"])
            }
            #expect(try await connection.send(["CLIENT", "INFO"]).string?.contains("db=1") == true)
            await connection.close()

            let wrong = try testConfiguration(server, url: "redis://:bad@127.0.0.1:\(server.port)")
            await expectRedisError("RESP2 wrong password", { if case .authentication = $0 { return true } else { return false } }) {
                _ = try await RESPConnection.connect(configuration: wrong)
            }
        }
        try await withRedisServer { server throws in
            let forced = try await RESPConnection.connect(configuration: try testConfiguration(server, url: server.url + "?protocol=2"))
            #expect(forced.protocolVersion == .resp2)
            #expect(try await forced.send(["INCRBYFLOAT", "f", "1.5"]).double == 1.5)
            await forced.close()
            let negotiated = try await RESPConnection.connect(configuration: try testConfiguration(server))
            #expect(negotiated.protocolVersion == .resp3)
            await negotiated.close()
        }
    }

    @Test("command timeout closes the connection, fails every outstanding command, and the pool recovers")
    func commandTimeout() async throws {
        try await withRedisServer { server throws in
            var configuration = try testConfiguration(server)
            configuration.commandTimeout = .milliseconds(200)
            configuration.maximumConnections = 1

            // On one connection: the blocked command and the two queued behind it all fail.
            let connection = try await RESPConnection.connect(configuration: configuration)
            async let blocked = connection.pipeline([["BLPOP", "nolist", "2"], ["PING"]])
            try await Task.sleep(for: .milliseconds(20))
            async let queued = connection.send(["PING"])
            do {
                _ = try await blocked
                Issue.record("BLPOP should have timed out")
            } catch {
                #expect(error as? RedisError == .timeout)
            }
            do {
                _ = try await queued
                Issue.record("queued PING should have failed")
            } catch {
                #expect(error as? RedisError == .timeout || error as? RedisError == .connectionClosed)
            }
            try await Task.sleep(for: .milliseconds(50))
            #expect(!connection.isActive)

            try await withClient(configuration) { client throws in
                let elapsed = await expectRedisError("BLPOP", { $0 == .timeout }) {
                    try await client.send("BLPOP", "nolist", "2")
                }
                #expect(elapsed < .seconds(1.5))
                #expect(try await client.send("PING") == .simpleString("PONG"))
                // A per-command timeout override makes room for a blocking command.
                #expect(try await client.send(["BLPOP", "nolist", "0.3"], timeout: .seconds(2)).isNull)
            }
        }
    }

    @Test("pool acquire timeout when every connection is busy")
    func acquireTimeout() async throws {
        try await withRedisServer { server throws in
            var configuration = try testConfiguration(server)
            configuration.maximumConnections = 1
            configuration.acquireTimeout = .milliseconds(200)
            try await withClient(configuration) { client throws in
                async let busy = client.send("BLPOP", "nolist", "1")
                try await Task.sleep(for: .milliseconds(100))
                let elapsed = await expectRedisError("acquire", { $0 == .poolAcquireTimeout }) {
                    try await client.send("PING")
                }
                #expect(elapsed < .seconds(1))
                #expect(try await busy.isNull)
                #expect(try await client.send("PING") == .simpleString("PONG"))
            }
        }
    }

    @Test("RESP3 push messages go to the push handler, not to a waiting command")
    func pushMessages() async throws {
        try await withRedisServer { server throws in
            let configuration = try testConfiguration(server)
            let (pushes, continuation) = AsyncStream.makeStream(of: RESPValue.self)
            let tracked = try await RESPConnection.connect(configuration: configuration, pushHandler: { continuation.yield($0) })
            let other = try await RESPConnection.connect(configuration: configuration)
            try await tracked.send(["CLIENT", "TRACKING", "ON"])
            try await tracked.send(["GET", "watched"])
            try await other.send(["SET", "watched", "changed"])
            // The invalidation push arrives in between replies; PING must still get PONG.
            #expect(try await tracked.send(["PING"]) == .simpleString("PONG"))
            var iterator = pushes.makeAsyncIterator()
            let push = await iterator.next()
            #expect(push?.array?.first?.string == "invalidate")
            #expect(push?.array?.last?.array?.first?.string == "watched")
            continuation.finish()
            await tracked.close()
            await other.close()
        }
    }

    @Test("Service: run() returns on cancellation and shuts the client down")
    func serviceLifecycle() async throws {
        try await withRedisServer { server throws in
            let client = RedisClient(configuration: try testConfiguration(server))
            let task = Task { try await client.run() }
            #expect(try await client.send("PING") == .simpleString("PONG"))
            task.cancel()
            try await task.value
            await expectRedisError("after shutdown", { $0 == .clientShutdown }) { try await client.send("PING") }
        }
    }

    @Test("figures: 10,000 GETs one at a time vs pipelined in batches of 100 (printed, not asserted)")
    func throughputFigures() async throws {
        try await withRedisServer { server throws in
            try await withClient(try testConfiguration(server)) { client throws in
                try await client.send("SET", "bench", "value")
                let clock = ContinuousClock()
                let sequential = try await clock.measure {
                    for _ in 0..<10_000 { _ = try await client.send("GET", "bench") }
                }
                let batch: [[RESPArgument]] = Array(repeating: ["GET", "bench"], count: 100)
                let pipelined = try await clock.measure {
                    for _ in 0..<100 { _ = try await client.pipeline(batch) }
                }
                print("RESP figures: 10,000 GETs one at a time: \(sequential); pipelined in batches of 100: \(pipelined)")
            }
        }
    }
}
