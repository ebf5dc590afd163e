import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Tessera
import TesseraHummingbird
import TesseraRemote
import TesseraServer
import Testing

/// `TesseraRemoteVerifier` against a real Tessera HTTP server on loopback (in this process,
/// on memory stores), over the revocation stream.
@Suite("TesseraRemoteVerifier (live)")
struct RemoteVerifierTests {
    static let serviceKey = "service-key-for-the-tests"

    @Test func followsPushedRevocationsWithNoCallPerRequest() async throws {
        let tessera = try await EmbeddedTessera.make(clock: false)
        // Heartbeat 1 s, lease 3 s: a loaded test machine can stall a 200 ms heartbeat past its
        // 600 ms lease, and the verifier then rightly asks Tessera; the steady state is the point here.
        let options = TesseraHTTP.Options(serviceKey: Self.serviceKey, revocationHeartbeat: .seconds(1))
        let server = Application(router: TesseraHTTP.router(service: tessera.service, options: options), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await server.test(.live) { client in
            let port = try #require(client.port)
            let verifier = TesseraRemoteVerifier(baseURL: "http://127.0.0.1:\(port)", serviceKey: Self.serviceKey)
            let follower = Task { try await verifier.run() }
            defer { follower.cancel() }
            try await waitUntil("synced") { verifier.isSynced }

            let grant = try await tessera.register()
            let identity = try await verifier.verify(token: grant.accessToken)
            #expect(identity.userID == grant.user.id)
            #expect(identity.sessionID == grant.sessionID)
            for _ in 0..<50 { _ = try await verifier.verify(token: grant.accessToken) }
            // Steady state: every answer came from the local copy.
            #expect(verifier.counters.introspections == 0)
            #expect(verifier.counters.keyFetches == 1)

            // A logout at Tessera (over HTTP) is refused here within a second.
            let logout = try await client.execute(
                uri: "/v1/auth/logout", method: .post, headers: [.authorization: "Bearer \(grant.accessToken)"]
            ) { $0.status }
            #expect(logout == .noContent)
            let start = ContinuousClock.now
            var refused = false
            while ContinuousClock.now - start < .seconds(1) {
                do {
                    _ = try await verifier.verify(token: grant.accessToken)
                    try await Task.sleep(for: .milliseconds(5))
                } catch {
                    #expect(error as? TesseraVerificationError == .revoked)
                    refused = true
                    break
                }
            }
            #expect(refused, "the revoked token was still accepted a second after the logout")
            #expect(verifier.counters.introspections == 0)

            // A forged token never reaches the revocation check; an expired one is told apart.
            await #expect(throws: TesseraVerificationError.invalid) { try await verifier.verify(token: grant.accessToken + "x") }
        }
    }

    @Test func streamNeedsTheServiceKey() async throws {
        let tessera = try await EmbeddedTessera.make(clock: false)
        try await Application(router: TesseraHTTP.router(service: tessera.service, options: .init(serviceKey: Self.serviceKey))).test(.router) { client in
            let missing = try await client.get("/v1/revocations/stream")
            #expect(missing.status == .unauthorized)
            #expect(missing.code == "invalid_service_key")
            let wrong = try await client.get("/v1/revocations/stream", bearer: "not-the-service-key")
            #expect(wrong.status == .unauthorized)
        }
        // No service key configured: no such endpoint.
        try await Application(router: TesseraHTTP.router(service: tessera.service)).test(.router) { client in
            let reply = try await client.get("/v1/revocations/stream", bearer: Self.serviceKey)
            #expect(reply.status == .notFound)
        }
    }

    @Test func notSyncedAsksTesseraOncePerToken() async throws {
        let tessera = try await EmbeddedTessera.make(clock: false)
        let grant = try await tessera.register()
        let server = Application(
            router: TesseraHTTP.router(service: tessera.service, options: .init(serviceKey: Self.serviceKey)),
            configuration: .init(address: .hostname("127.0.0.1", port: 0))
        )
        try await server.test(.live) { client in
            // Never run: no stream, so every answer on revocation comes from introspection.
            let verifier = TesseraRemoteVerifier(baseURL: "http://127.0.0.1:\(try #require(client.port))", serviceKey: Self.serviceKey)
            #expect(try await verifier.verify(token: grant.accessToken).sessionID == grant.sessionID)
            #expect(verifier.counters.introspections == 1)
            try await tessera.service.logout(try await tessera.service.authenticate(bearer: grant.accessToken))
            await #expect(throws: TesseraVerificationError.revoked) { try await verifier.verify(token: grant.accessToken) }
            #expect(verifier.counters.introspections == 2)
        }
    }

    @Test func notSyncedAndTesseraDownIsA503() async throws {
        let tessera = try await EmbeddedTessera.make(clock: false)
        let grant = try await tessera.register()
        // Nothing listens there: no keys, no stream, no introspection.
        let port = try closedPort()
        let verifier = TesseraRemoteVerifier(baseURL: "http://127.0.0.1:\(port)", serviceKey: Self.serviceKey)
        #expect(!verifier.isSynced)
        try await Application(router: AppRouter.make(verifier)).test(.router) { client in
            let reply = try await client.get("/whoami", bearer: grant.accessToken)
            #expect(reply.status == .serviceUnavailable)
            #expect(reply.code == "verification_unavailable")
            // No credential is still no identity: the route decides.
            #expect(try await client.get("/whoami").text == "anonymous")
        }
    }

    @Test func aVerifierThatLostTesseraFailsClosed() async throws {
        let tessera = try await EmbeddedTessera.make(clock: false)
        let grant = try await tessera.register()
        let server = Application(
            router: TesseraHTTP.router(service: tessera.service, options: .init(serviceKey: Self.serviceKey, revocationHeartbeat: .milliseconds(100))),
            configuration: .init(address: .hostname("127.0.0.1", port: 0))
        )
        let verifier = try await server.test(.live) { client in
            let verifier = TesseraRemoteVerifier(baseURL: "http://127.0.0.1:\(try #require(client.port))", serviceKey: Self.serviceKey)
            let follower = Task { try await verifier.run() }
            try await waitUntil("synced") { verifier.isSynced }
            #expect(try await verifier.verify(token: grant.accessToken).userID == grant.user.id)
            follower.cancel()
            _ = await follower.result
            return verifier
        }
        // Tessera is gone and the stream with it: the keys are known, the revocation state is not.
        #expect(!verifier.isSynced)
        try await Application(router: AppRouter.make(verifier)).test(.router) { client in
            let reply = try await client.get("/whoami", bearer: grant.accessToken)
            #expect(reply.status == .serviceUnavailable)
            #expect(reply.code == "verification_unavailable")
        }
        #expect(verifier.counters.introspections == 1)
    }
}

func waitUntil(_ what: String, timeout: Duration = .seconds(30), _ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        guard ContinuousClock.now < deadline else { throw WaitFailure(description: "not \(what) within \(timeout)") }
        try await Task.sleep(for: .milliseconds(20))
    }
}

struct WaitFailure: Error, CustomStringConvertible { var description: String }

/// A loopback port nothing listens on (bound, then closed).
func closedPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw WaitFailure(description: "no free port") }
    return Int(UInt16(bigEndian: address.sin_port))
}
