import Foundation

/// The refresh-rotation rule, in one place for the stores that run Swift (Redis runs the same
/// rule in Lua, see RedisScripts.rotate).
///
/// - the current generation rotates;
/// - the immediately previous generation, within the grace window of the last rotation, is
///   answered with the current one (concurrent refreshes from one client);
/// - any other older generation is re-use: the session is revoked;
/// - anything else (no live session of that user, a generation from the future) is invalid.
public enum RotationDecision: Sendable, Equatable {
    /// Store this updated session.
    case rotate(SessionRecord)
    case reissue(SessionRecord)
    /// Remove the session and deny its access tokens.
    case revoke(SessionRecord)
    case invalid

    public init(session: SessionRecord?, request: RotationRequest, now: Date) {
        guard var session, session.isLive(at: now), session.userID == request.userID else {
            self = .invalid
            return
        }
        switch request.presentedGeneration {
        case session.generation:
            session.generation += 1
            session.rotatedAt = now
            session.lastUsedAt = now
            session.idleExpiresAt = min(now.addingTimeInterval(request.idleTTL), session.absoluteExpiresAt)
            session.userAgent = request.userAgent ?? session.userAgent
            session.ipAddress = request.ipAddress ?? session.ipAddress
            self = .rotate(session)
        case session.generation - 1 where now.timeIntervalSince(session.rotatedAt) <= request.graceWindow:
            self = .reissue(session)
        case ..<session.generation:
            self = .revoke(session)
        default:
            self = .invalid
        }
    }
}
