import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Tessera
import TesseraRESP
import TesseraRedis
import TesseraServer
import Testing

/// `/health/live` for liveness probes, `/health/ready` for readiness: an orchestrator that
/// restarts on a failed liveness probe must never restart a healthy instance because Redis is down.
@Suite struct HealthProbeTests {
    @Test func readinessFollowsTheStartUpAndShutdownPhases() async throws {
        var tessera = try await TestTessera.make()
        let readiness = Readiness()
        tessera.options = .init(readiness: readiness)
        try await tessera.test { client in
            let starting = try await client.call(.get, "/health/ready")
            #expect(starting.status == .serviceUnavailable)
            #expect(starting["phase"] == "starting")
            #expect(try await client.call(.get, "/health/live").status == .ok)

            readiness.serving()
            let serving = try await client.call(.get, "/health/ready")
            #expect(serving.status == .ok)
            #expect(serving["status"] == "ready")
            #expect(serving["mode"] == "primary")

            readiness.stopping()
            let stopping = try await client.call(.get, "/health/ready")
            #expect(stopping.status == .serviceUnavailable)
            #expect(stopping["phase"] == "stopping")
            #expect(try await client.call(.get, "/health/live").status == .ok)
        }
    }

    /// A Redis that does not answer (nothing listens on port 1): not ready, still live.
    @Test func anUnreachableStoreIsNotReadyButStillLive() async throws {
        var configuration = try RedisConfiguration(url: "redis://127.0.0.1:1")
        configuration.connectTimeout = .milliseconds(200)
        configuration.commandTimeout = .milliseconds(200)
        configuration.acquireTimeout = .milliseconds(200)
        let client = RedisClient(configuration: configuration, logger: Logger(label: "test"))
        let clock = ManualClock(Date())
        var policy = TokenPolicy()
        policy.bcryptCost = 4
        let service = try await AuthService(
            policy: policy, users: MemoryUserStore(), tokens: RedisTokenStore(client: client, keyPrefix: "t:", clock: clock), keys: .generate(),
            security: .local(secrets: .generate(), outbox: NSTemporaryDirectory() + "tessera-\(UUID().uuidString)", rateLimits: .unlimited, clock: clock),
            clock: clock
        )
        let app = Application(router: TesseraHTTP.router(service: service))
        try await app.test(.router) { client in
            let live = try await client.call(.get, "/health/live")
            #expect(live.status == .ok)
            #expect(live["status"] == "live")
            let ready = try await client.call(.get, "/health/ready")
            #expect(ready.status == .serviceUnavailable)
            #expect(ready["status"] == "not_ready")
        }
        await client.shutdown()
    }

    @Test func theBinaryIsReadyOnceItListens() async throws {
        let server = try await TesseraProcess.start(["--database-url", "memory:", "--token-store", "memory"])
        try await TestClient.withClient(host: "127.0.0.1", port: server.port) { client in
            #expect(try await client.call(.get, "/health/live").status == .ok)
            let ready = try await client.call(.get, "/health/ready")
            #expect(ready.status == .ok)
            #expect(ready.json["phase"] as? String == "serving")
        }
        await server.stop()
    }
}
