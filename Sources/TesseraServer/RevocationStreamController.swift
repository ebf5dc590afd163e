import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import ServiceLifecycle
import Tessera

/// `GET /v1/revocations/stream`: the live denylist, then every new denial, as server-sent
/// events, for apps that verify access tokens themselves (`TesseraRemoteVerifier`).
/// docs/API.md, "Revocation stream", is the protocol.
struct RevocationStreamController: Sendable {
    let service: AuthService
    let serviceKey: SharedKey
    let heartbeat: Duration

    func addRoutes(to group: RouterGroup<TesseraRequestContext>) {
        group.get("stream") { request, _ in
            guard serviceKey.authorizes(request) else {
                throw APIError(
                    .unauthorized, code: "invalid_service_key", detail: "This endpoint needs the service key as a Bearer token.",
                    headers: [.wwwAuthenticate: "Bearer realm=\"tessera-service\""]
                )
            }
            return try await stream()
        }
    }

    private func stream() async throws -> Response {
        guard let feed = service.tokens.revocationFeed else {
            throw APIError(
                .serviceUnavailable, code: "revocation_stream_unavailable",
                detail: "This token store cannot push revocations; ask the introspection endpoint instead."
            )
        }
        // Follow first, then read the snapshot: a denial written in between is in one or both.
        let denials = feed.follow()
        let snapshot = try await service.tokens.liveRevocations()
        let heartbeat = heartbeat
        let opening = Self.event("snapshot", Snapshot(heartbeatMs: heartbeat.wholeMilliseconds, leaseMs: 3 * heartbeat.wholeMilliseconds, revocations: snapshot))
        let body = ResponseBody { writer in
            try await writer.write(ByteBuffer(string: "retry: 1000\n\n" + opening))
            let sent = Set(snapshot)
            try await withThrowingTaskGroup(of: Void.self) { group in
                let (events, output) = AsyncStream.makeStream(of: String.self)
                group.addTask {
                    for await denial in denials where !sent.contains(denial) { output.yield(Self.event("revoked", denial)) }
                    // The feed ended this stream (overflow, or the store lost track): the follower resyncs.
                    output.finish()
                }
                group.addTask {
                    while !Task.isCancelled {
                        try await Task.sleep(for: heartbeat)
                        // Only while the feed sees every denial: a silent stream tells the follower to ask.
                        if feed.isLive { output.yield(Self.event("heartbeat", Heartbeat(at: Date().timeIntervalSince1970))) }
                    }
                }
                // On shutdown the stream ends cleanly; followers reconnect to another instance.
                try await withGracefulShutdownHandler {
                    for await event in events { try await writer.write(ByteBuffer(string: event)) }
                } onGracefulShutdown: {
                    output.finish()
                }
                group.cancelAll()
            }
            try await writer.finish(nil)
        }
        return Response(
            status: .ok,
            headers: [.contentType: "text/event-stream", .cacheControl: "no-store", HTTPField.Name("X-Accel-Buffering")!: "no"],
            body: body
        )
    }

    struct Snapshot: Encodable {
        var heartbeatMs: Int64
        var leaseMs: Int64
        var revocations: [Revocation]
        enum CodingKeys: String, CodingKey {
            case heartbeatMs = "heartbeat_ms"
            case leaseMs = "lease_ms"
            case revocations
        }
    }

    struct Heartbeat: Encodable {
        var at: Double
    }

    static func event(_ name: String, _ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return "event: \(name)\ndata: \(String(decoding: data, as: UTF8.self))\n\n"
    }
}

extension Duration {
    var wholeMilliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
}
