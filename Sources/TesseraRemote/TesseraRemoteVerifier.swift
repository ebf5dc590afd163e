import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import Synchronization
import Tessera

/// Verifies a remote Tessera's access tokens in this process, with no call to Tessera per
/// request, and still refuses a revoked token as soon as Tessera pushes the revocation.
///
/// - Signatures: the JWKS (`/.well-known/jwks.json`), verified locally with Tessera's own
///   codec. An unknown `kid` refetches the JWKS once, at most every `keyRefetchInterval`.
/// - Revocations: follows `GET /v1/revocations/stream` (server-sent events: a snapshot of the
///   live denylist, then each denial, with heartbeats); reconnects with capped backoff and
///   starts again from a snapshot after every gap.
/// - "Not revoked" is answered locally only while synced and the last heartbeat is younger
///   than the stream's lease; otherwise one introspection call (`POST /v1/oauth/introspect`),
///   and `unavailable` (fail closed) when that fails.
///
/// Run it as a swift-service-lifecycle `Service`; `verify` works before it has synced (it asks).
public final class TesseraRemoteVerifier: TesseraVerifying, Service {
    public struct Options: Sendable {
        /// The `iss` Tessera signs with (`--issuer`).
        public var issuer = "tessera"
        /// Per call to the JWKS and introspection endpoints.
        public var requestTimeout: Duration = .seconds(2)
        public var keyRefetchInterval: Duration = .seconds(10)
        public var reconnectBackoff: Duration = .milliseconds(100)
        public var maxReconnectBackoff: Duration = .seconds(5)

        public init() {}
    }

    /// What the verifier has done so far, for tests, logs and metrics.
    public struct Counters: Sendable, Equatable {
        public var introspections = 0
        public var keyFetches = 0
        public var snapshots = 0
    }

    private struct State {
        var codec: AccessTokenCodec?
        var lastKeyFetch: ContinuousClock.Instant?
        /// `sid:<id>` / `jti:<id>` → Unix seconds.
        var denied: [String: Int64] = [:]
        var synced = false
        var trustedUntil: ContinuousClock.Instant?
        var lease: Duration = .seconds(3)
        var counters = Counters()
    }

    public let baseURL: String
    private let serviceKey: String
    private let options: Options
    private let client: HTTPClient
    private let logger: Logger
    private let state = Mutex(State())

    /// - Parameters:
    ///   - baseURL: where Tessera answers, e.g. `http://127.0.0.1:8080`.
    ///   - serviceKey: Tessera's `--service-key`.
    public init(
        baseURL: String, serviceKey: String, options: Options = .init(), httpClient: HTTPClient = .shared,
        logger: Logger = Logger(label: "tessera.remote")
    ) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.serviceKey = serviceKey
        self.options = options
        self.client = httpClient
        self.logger = logger
    }

    /// Whether a token's revocation status is answered locally right now.
    public var isSynced: Bool {
        state.withLock { state in state.synced && (state.trustedUntil.map { ContinuousClock.now < $0 } ?? false) }
    }

    public var counters: Counters { state.withLock { $0.counters } }

    // MARK: Verifying

    public func verify(token: String) async throws(TesseraVerificationError) -> TesseraIdentity {
        let claims = try await verifySignature(token)
        let local: Bool? = state.withLock { state in
            let now = Int64(Date().timeIntervalSince1970)
            // A denial once seen stays true until it expires, synced or not.
            if [state.denied["sid:" + claims.sid], state.denied["jti:" + claims.jti]].contains(where: { ($0 ?? 0) > now }) { return true }
            guard state.synced, let until = state.trustedUntil, ContinuousClock.now < until else { return nil }
            return false
        }
        switch local {
        case .some(true): throw .revoked
        case .some(false): return TesseraIdentity(claims)
        case .none:
            // Not synced, or the stream has gone quiet: only Tessera can tell.
            guard try await introspect(token) else { throw .revoked }
            return TesseraIdentity(claims)
        }
    }

    private func verifySignature(_ token: String) async throws(TesseraVerificationError) -> AccessClaims {
        var refetched = false
        while true {
            let codec: AccessTokenCodec
            if let current = state.withLock({ $0.codec }) {
                codec = current
            } else {
                codec = try await fetchKeys()
                refetched = true
            }
            do {
                return try codec.verifyCached(token, now: Date())
            } catch .expired {
                throw .expired
            } catch .unknownKey where !refetched && mayRefetchKeys() {
                // A rotation Tessera made since our last fetch: look once more.
                _ = try await fetchKeys()
                refetched = true
            } catch {
                throw .invalid
            }
        }
    }

    private func mayRefetchKeys() -> Bool {
        state.withLock { state in
            guard let last = state.lastKeyFetch else { return true }
            return ContinuousClock.now - last >= options.keyRefetchInterval
        }
    }

    @discardableResult
    private func fetchKeys() async throws(TesseraVerificationError) -> AccessTokenCodec {
        state.withLock { state in
            state.lastKeyFetch = .now
            state.counters.keyFetches += 1
        }
        do {
            let request = HTTPClientRequest(url: baseURL + "/.well-known/jwks.json")
            let response = try await client.execute(request, timeout: .nanoseconds(options.requestTimeout.totalNanoseconds))
            guard response.status == .ok else { throw RemoteError("JWKS answered \(response.status.code)") }
            let body = try await response.body.collect(upTo: 1 << 20)
            let jwks = try JSONDecoder().decode(JWKS.self, from: Data(body.readableBytesView))
            let codec = AccessTokenCodec(verifyingKeys: AccessTokenCodec.verifyingKeys(of: jwks), issuer: options.issuer)
            state.withLock { $0.codec = codec }
            return codec
        } catch {
            logger.warning("cannot fetch Tessera's JWKS", metadata: ["error": "\(error)"])
            if let codec = state.withLock({ $0.codec }) { return codec }
            throw .unavailable("cannot fetch Tessera's keys")
        }
    }

    /// RFC 7662: true when Tessera says the token is active.
    private func introspect(_ token: String) async throws(TesseraVerificationError) -> Bool {
        state.withLock { $0.counters.introspections += 1 }
        do {
            var request = HTTPClientRequest(url: baseURL + "/v1/oauth/introspect")
            request.method = .POST
            request.headers.add(name: "Authorization", value: "Bearer " + serviceKey)
            request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            request.body = .bytes(ByteBuffer(string: "token=" + Self.formEncoded(token)))
            let response = try await client.execute(request, timeout: .nanoseconds(options.requestTimeout.totalNanoseconds))
            guard response.status == .ok else { throw RemoteError("introspection answered \(response.status.code)") }
            let body = try await response.body.collect(upTo: 64 * 1024)
            struct Answer: Decodable { var active: Bool }
            return try JSONDecoder().decode(Answer.self, from: Data(body.readableBytesView)).active
        } catch {
            logger.warning("introspection failed; refusing the token", metadata: ["error": "\(error)"])
            throw .unavailable("Tessera unreachable")
        }
    }

    static func formEncoded(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
    }

    // MARK: Service

    /// Follows the revocation stream until graceful shutdown.
    public func run() async throws {
        try? await cancelWhenGracefulShutdown {
            var backoff = self.options.reconnectBackoff
            while !Task.isCancelled {
                do {
                    try await self.follow()
                    backoff = self.options.reconnectBackoff
                } catch {
                    if Task.isCancelled { break }
                    self.logger.info("revocation stream interrupted; reconnecting", metadata: ["error": "\(error)"])
                }
                self.state.withLock { $0.synced = false }
                try await Task.sleep(for: backoff)
                backoff = min(backoff * 2, self.options.maxReconnectBackoff)
            }
        }
        state.withLock { $0.synced = false }
    }

    /// One connection: snapshot, then denials and heartbeats, until it ends or goes quiet.
    private func follow() async throws {
        var request = HTTPClientRequest(url: baseURL + "/v1/revocations/stream")
        request.headers.add(name: "Authorization", value: "Bearer " + serviceKey)
        request.headers.add(name: "Accept", value: "text/event-stream")
        let response = try await client.execute(request, deadline: .distantFuture)
        guard response.status == .ok else {
            throw RemoteError("revocation stream answered \(response.status.code)")
        }
        // Keys may have rotated while we were away.
        if mayRefetchKeys() { _ = try? await fetchKeys() }
        let lastActivity = LastActivity()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                var parser = ServerSentEvents()
                for try await chunk in response.body {
                    lastActivity.touch()
                    for event in parser.feed(chunk) { try self.apply(event) }
                }
                throw RemoteError("revocation stream ended")
            }
            group.addTask {
                // A connection that stays silent past the lease is dead even if TCP has not said so.
                while true {
                    try await Task.sleep(for: .milliseconds(250))
                    let lease = self.state.withLock { $0.lease }
                    if ContinuousClock.now - lastActivity.instant > lease + .seconds(1) {
                        throw RemoteError("revocation stream silent for longer than its lease")
                    }
                }
            }
            _ = try await group.next()
            group.cancelAll()
        }
    }

    private func apply(_ event: ServerSentEvents.Event) throws {
        let decoder = JSONDecoder()
        switch event.name {
        case "snapshot":
            struct Snapshot: Decodable {
                var heartbeat_ms: Int64
                var lease_ms: Int64
                var revocations: [Revocation]
            }
            let snapshot = try decoder.decode(Snapshot.self, from: Data(event.data.utf8))
            let lease = Duration.milliseconds(snapshot.lease_ms)
            state.withLock { state in
                let now = Int64(Date().timeIntervalSince1970)
                // Entries only ever deny: merge, and forget only what has expired.
                state.denied = state.denied.filter { $0.value > now }
                for revocation in snapshot.revocations { Self.merge(revocation, into: &state.denied) }
                state.lease = lease
                state.synced = true
                state.trustedUntil = .now + lease
                state.counters.snapshots += 1
            }
            logger.info("revocation stream synchronised", metadata: ["entries": "\(snapshot.revocations.count)"])
        case "revoked":
            let revocation = try decoder.decode(Revocation.self, from: Data(event.data.utf8))
            state.withLock { Self.merge(revocation, into: &$0.denied) }
        case "heartbeat":
            state.withLock { state in
                if state.synced { state.trustedUntil = .now + state.lease }
            }
        default:
            break
        }
    }

    private static func merge(_ revocation: Revocation, into denied: inout [String: Int64]) {
        let key = revocation.kind.rawValue + ":" + revocation.id
        denied[key] = max(denied[key] ?? 0, revocation.until)
    }
}

/// When the stream last delivered bytes, shared by its reader and its watchdog.
final class LastActivity: Sendable {
    private let value = Mutex(ContinuousClock.now)
    func touch() { value.withLock { $0 = .now } }
    var instant: ContinuousClock.Instant { value.withLock { $0 } }
}

struct RemoteError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension Duration {
    var totalNanoseconds: Int64 { components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000 }
}
