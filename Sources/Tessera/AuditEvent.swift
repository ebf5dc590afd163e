/// One security-relevant outcome, as written to the audit log. The names and field keys are a
/// contract (docs/AUDIT.md): log pipelines alert on them. Never put a token, password, code or
/// secret in any field.
public struct AuditEvent: Sendable, Equatable {
    /// The stable `event` field.
    public enum Name: String, Sendable, CaseIterable {
        case accountRegistered = "account.registered"
        case loginSucceeded = "login.succeeded"
        case loginFailed = "login.failed"
        case mfaChallenged = "mfa.challenged"
        case mfaFailed = "mfa.failed"
        case refreshReuseDetected = "refresh.reuse_detected"
        case logout
        case logoutAll = "logout_all"
        case sessionRevoked = "session.revoked"
        case passwordChanged = "password.changed"
        case passwordResetRequested = "password.reset_requested"
        case passwordReset = "password.reset"
        case mfaEnabled = "mfa.enabled"
        case mfaDisabled = "mfa.disabled"
        case mfaReset = "mfa.reset"
        case adminAction = "admin.action"
        case keyRotated = "key.rotated"

        /// Failures and attacks are `warning`, everything else `notice`, so a pipeline can keep
        /// the audit label at `notice` while the rest of the process logs less.
        var isAlarm: Bool {
            switch self {
            case .loginFailed, .mfaFailed, .refreshReuseDetected: true
            default: false
            }
        }
    }

    public var name: Name
    public var userID: String?
    public var sessionID: String?
    /// Why a failure failed (`wrong_password`, `unknown_account`, `rate_limited`, ...).
    public var reason: String?
    /// Event-specific facts under stable keys (`sessions_ended`, `action`, ...). Ids and
    /// counts only.
    public var details: [String: String]

    public init(_ name: Name, userID: String? = nil, sessionID: String? = nil, reason: String? = nil, details: [String: String] = [:]) {
        self.name = name
        self.userID = userID
        self.sessionID = sessionID
        self.reason = reason
        self.details = details
    }

    /// An operator's action through the admin API or CLI: `action` names it
    /// (`user.mfa_reset`), `target` is the user (or key) it acted on.
    public static func adminAction(_ action: String, target userID: String? = nil, details: [String: String] = [:]) -> AuditEvent {
        var details = details
        details["action"] = action
        return AuditEvent(.adminAction, userID: userID, details: details)
    }

    /// A signing or encryption key replaced; `keyID` is the new key's public id.
    public static func keyRotated(kind: String, keyID: String, previousKeyID: String? = nil) -> AuditEvent {
        var details = ["key_kind": kind, "key_id": keyID]
        details["previous_key_id"] = previousKeyID
        return AuditEvent(.keyRotated, details: details)
    }
}
