import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Tessera

/// `/v1/admin/*`, guarded by the configured admin key as a Bearer token.
struct AdminController: Sendable {
    let service: AuthService
    let adminKey: SharedKey
    let sweeper: ExpirySweeper?
    /// nil: key routes answer 409 `keys_ephemeral`.
    let keyFiles: KeyFiles?
    let keyPublishDelay: TimeInterval
    var trustedProxies = TrustedProxies.none

    func addRoutes(to group: RouterGroup<TesseraRequestContext>) {
        group.get("stats") { request, _ in
            try authorize(request)
            return try JSONBody.response(try await stats())
        }
        addUserRoutes(to: group)
        addKeyRoutes(to: group)
        // For an owner who lost every second factor; the operations CLI calls this too.
        group.post("users/{id}/mfa/reset") { request, context in
            try authorize(request)
            let userID = try context.parameters.require("id")
            let client = ClientInfo(request, context, trustedProxies: trustedProxies)
            let wasEnabled = try await service.resetMFA(userID: userID, client: client)
            service.audit.record(.adminAction("user.mfa_reset", target: userID), client: client)
            return try JSONBody.response(MFAReset(mfaWasEnabled: wasEnabled))
        }
    }

    struct MFAReset: Encodable {
        var status = "reset"
        /// False when MFA was off (a pending enrolment is still cancelled).
        var mfaWasEnabled: Bool
        enum CodingKeys: String, CodingKey {
            case status
            case mfaWasEnabled = "mfa_was_enabled"
        }
    }

    func authorize(_ request: Request) throws {
        guard let presented = request.bearerToken, adminKey.matches(presented) else {
            throw APIError(
                .unauthorized, code: "invalid_admin_key", detail: "This endpoint needs the admin key as a Bearer token.",
                headers: [.wwwAuthenticate: "Bearer realm=\"tessera-admin\""]
            )
        }
    }

    struct Stats: Encodable {
        struct Tokens: Encodable {
            var liveSessions: Int
            var refreshTokens: Int
            var deniedTokens: Int
            var pendingResetTokens: Int
            var pendingMFATokens: Int
            enum CodingKeys: String, CodingKey {
                case liveSessions = "live_sessions"
                case refreshTokens = "refresh_tokens"
                case deniedTokens = "denied_tokens"
                case pendingResetTokens = "pending_reset_tokens"
                case pendingMFATokens = "pending_mfa_tokens"
            }
        }
        struct Cache: Encodable {
            var hits: Int
            var misses: Int
        }
        struct Sweeps: Encodable {
            var runs: Int
            var removed: Int
            var failures: Int
        }
        var tokens: Tokens
        var userCache: Cache
        var rateLimitRejections: [String: Int]
        var store: TesseraHTTP.Health.Store
        var mode: String
        var expirySweeps: Sweeps?
        enum CodingKeys: String, CodingKey {
            case tokens, store, mode
            case userCache = "user_cache"
            case rateLimitRejections = "rate_limit_rejections"
            case expirySweeps = "expiry_sweeps"
        }
    }

    private func stats() async throws -> Stats {
        let counts = try await service.tokens.statistics()
        let cache = service.userCacheStatistics
        let sweep = sweeper?.statistics
        return Stats(
            tokens: .init(
                liveSessions: counts.liveSessions, refreshTokens: counts.liveSessions, deniedTokens: counts.deniedTokens,
                pendingResetTokens: counts.pendingOneTimeTokens["reset"] ?? 0, pendingMFATokens: counts.pendingOneTimeTokens["mfa"] ?? 0
            ),
            userCache: .init(hits: cache.hits, misses: cache.misses),
            rateLimitRejections: service.limiter.rejections,
            store: await TesseraHTTP.probe(service.tokens),
            mode: ((service.tokens as? FallbackTokenStore)?.mode ?? .primary).rawValue,
            expirySweeps: sweep.map { .init(runs: $0.runs, removed: $0.removed, failures: $0.failures) }
        )
    }
}
