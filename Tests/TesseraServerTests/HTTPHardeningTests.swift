import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Tessera
@testable import TesseraServer
import Testing

/// What the audit did to the HTTP layer with raw sockets, kept as tests over a live socket.
@Suite struct HTTPHardeningTests {
    /// A live server with `limits` on an in-process Tessera; `body` gets its port.
    func live(
        limits: ConnectionLimits = .init(), options: TesseraHTTP.Options = .init(), adjust: (inout TokenPolicy) -> Void = { _ in },
        _ body: @escaping @Sendable (_ port: Int, _ client: any TestClientProtocol) async throws -> Void
    ) async throws {
        let tessera = try await TestTessera.make()
        let app = Application(
            router: TesseraHTTP.router(service: tessera.service, options: options),
            server: TesseraHTTP.server(limits),
            configuration: TesseraHTTP.serverConfiguration(address: .hostname("127.0.0.1", port: 0), limits: limits, logger: Logger(label: "test"))
        )
        try await app.test(.live) { client in try await body(try #require(client.port), client) }
    }

    static let cutBodies = [
        // Content-Length larger than what arrives.
        "Content-Length: 100\r\n\r\n{\"email\":",
        // A chunked body cut inside its first chunk.
        "Transfer-Encoding: chunked\r\n\r\n5\r\n{\"ema",
    ]

    @Test(arguments: cutBodies)
    func aCutBodyIsABadRequestNotAServerError(framing: String) async throws {
        try await live { port, _ in
            let socket = try RawSocket(port: port)
            socket.send("POST /v1/auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n" + framing)
            socket.shutdownWrite()
            let (reply, _) = await socket.receiveAll()
            #expect(reply.hasPrefix("HTTP/1.1 400"), "\(reply)")
            #expect(reply.contains("malformed_request"))
        }
    }

    @Test func aClientTricklingItsHeaderIsDroppedWhileOthersAreServed() async throws {
        var limits = ConnectionLimits()
        limits.headerTimeout = .milliseconds(800)
        try await live(limits: limits) { port, client in
            let slow = try RawSocket(port: port, receiveTimeout: .seconds(5))
            let start = ContinuousClock.now
            // One byte every 200 ms: the idle timer alone would never fire.
            var stillOpen = true
            for byte in "GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: yes".map(String.init) {
                guard slow.send(byte) else { stillOpen = false; break }
                // Others are served meanwhile.
                if byte == "H" { #expect(try await client.call(.get, "/.well-known/jwks.json").status == .ok) }
                try await Task.sleep(for: .milliseconds(200))
                if ContinuousClock.now - start > .seconds(4) { break }
            }
            let (_, closed) = await slow.receiveAll()
            #expect(!stillOpen || closed, "the trickling connection was still open after 4 s")
            #expect(ContinuousClock.now - start < .seconds(9))
            #expect(try await client.call(.get, "/.well-known/jwks.json").status == .ok)
        }
    }

    @Test func anIdleKeepAliveConnectionIsClosed() async throws {
        var limits = ConnectionLimits()
        limits.idleTimeout = .milliseconds(500)
        try await live(limits: limits) { port, _ in
            let socket = try RawSocket(port: port, receiveTimeout: .seconds(20))
            socket.send("GET /.well-known/jwks.json HTTP/1.1\r\nHost: localhost\r\n\r\n")
            let start = ContinuousClock.now
            let (reply, closed) = await socket.receiveAll()
            #expect(reply.hasPrefix("HTTP/1.1 200"))
            #expect(closed)
            // Without the idle timeout the connection would stay open; room for a loaded machine.
            #expect(ContinuousClock.now - start < .seconds(15))
        }
    }

    /// NIO encodes any answer to CONNECT without a body or a length, so the connection must
    /// close for the client to see where the answer ends.
    @Test func connectIsRefusedAndTheConnectionClosesAtOnce() async throws {
        try await live { port, _ in
            let socket = try RawSocket(port: port, receiveTimeout: .seconds(20))
            socket.send("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
            let start = ContinuousClock.now
            let (reply, closed) = await socket.receiveAll()
            #expect(reply.hasPrefix("HTTP/1.1 405"), "\(reply)")
            #expect(closed)
            // The idle timeout (60 s) would close it eventually; it must close right after the answer.
            #expect(ContinuousClock.now - start < .seconds(15), "the client had to wait for the connection to time out")
        }
    }

    @Test func everyAnswerForbidsSniffingAndFraming() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            for reply in [
                try await client.call(.get, "/.well-known/jwks.json"),
                try await client.call(.get, "/v1/auth/me"),
                try await client.call(.get, "/no/such/thing"),
            ] {
                #expect(reply.headers[.xContentTypeOptions] == "nosniff")
                #expect(reply.headers[.contentSecurityPolicy] == "default-src 'none'; frame-ancestors 'none'; base-uri 'none'")
            }
        }
    }

    @Test func metricsNeedTheMetricsKeyWhenOneIsSet() async throws {
        var tessera = try await TestTessera.make()
        tessera.options = .init(metricsKey: "metrics-key-0123456789", metrics: TesseraMetrics())
        try await tessera.test { client in
            let refused = try await client.call(.get, "/metrics")
            #expect(refused.status == .unauthorized)
            #expect(refused.code == "invalid_metrics_key")
            #expect(try await client.call(.get, "/metrics", bearer: "wrong-key-0123456789").status == .unauthorized)
            let allowed = try await client.call(.get, "/metrics", bearer: "metrics-key-0123456789")
            #expect(allowed.status == .ok)
            #expect(String(decoding: allowed.body, as: UTF8.self).contains("tessera_"))
        }
    }

    @Test func metricsStayOpenWithoutAKey() async throws {
        var tessera = try await TestTessera.make()
        tessera.options = .init(metrics: TesseraMetrics())
        try await tessera.test { client in
            let reply = try await client.call(.get, "/metrics")
            #expect(reply.status == .ok)
        }
    }

    @Test func passwordChecksBeyondTheQueueAreRefusedAtOnce() async throws {
        let hasher = PasswordHasher(cost: 12, maxQueued: 0, threads: 1)
        let running = Task { try await hasher.hash("correct horse battery") }
        while hasher.pending == 0 { try await Task.sleep(for: .milliseconds(5)) }
        await #expect(throws: PasswordHasher.Overloaded.self) { _ = try await hasher.verify("x", hash: "y") }
        _ = try await running.value
        #expect(hasher.pending == 0)
        // A slot is free again.
        #expect(try await hasher.verify("correct horse battery", hash: try await hasher.hash("correct horse battery")))
    }

    @Test func storeFailuresAnswerByTheirKind() {
        let capture = LogCapture()
        let answer = { (kind: StoreError.Kind) in
            ProblemMiddleware<TesseraRequestContext>.problem(
                for: StoreError(backend: "redis", message: "WRONGTYPE Operation against a key", kind: kind, operation: "EVALSHA rotate"),
                logger: capture.logger("test")
            )
        }
        let down = answer(.unavailable)
        #expect(down.status == .serviceUnavailable && down.code == "store_unavailable")
        let busy = answer(.overloaded)
        #expect(busy.status == .serviceUnavailable && busy.code == "store_unavailable")
        #expect(busy.headers[.retryAfter] == "1")
        let failed = answer(.failed)
        #expect(failed.status == .internalServerError && failed.code == "internal_error")
        #expect(!failed.detail.contains("WRONGTYPE"), "nothing internal in the response")
        let logged = capture.records.last
        #expect(logged?.level == .error)
        #expect(logged?.metadata["operation"] == "EVALSHA rotate")
    }

    @Test func anOverloadedHasherIsA503WithRetryAfter() async throws {
        let problem = ProblemMiddleware<TesseraRequestContext>.problem(for: PasswordHasher.Overloaded(), logger: Logger(label: "test"))
        #expect(problem.status == .serviceUnavailable)
        #expect(problem.code == "overloaded")
        #expect(problem.headers[.retryAfter] == "1")
    }
}
