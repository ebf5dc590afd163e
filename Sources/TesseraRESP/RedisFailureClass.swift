/// What a failed command means for the caller, decided once here so that every store and
/// policy above reads the same answer.
public enum RedisFailureClass: String, Sendable, Hashable, CaseIterable {
    /// Redis cannot be reached: refused, reset, lost, a TLS or protocol failure, credentials
    /// refused, the client shut down. The deployment's outage policy applies.
    case unavailable
    /// Redis is reachable but cannot take the command now: every pooled connection busy for the
    /// acquire timeout, no reply within the command timeout, a script past its time limit
    /// (`BUSY`), too few replicas acknowledging (`NOREPLICAS`), or the caller gave up
    /// (cancelled). Retrying shortly is right; switching to a fallback store is not.
    case overloaded
    /// Redis answered with an error that retrying will not change: a script error, `WRONGTYPE`,
    /// `OOM`, `NOSCRIPT` after the source was sent, an unusable configuration.
    case server
    /// The deployment is changing shape: `MOVED`, `ASK`, `TRYAGAIN`, `CLUSTERDOWN`,
    /// `MASTERDOWN`, `LOADING`, `READONLY`. The cluster and Sentinel clients retry these a
    /// bounded number of times; one that still reaches a caller means the data is not served.
    case topology
}

extension RedisError {
    /// Server error codes that name a change of topology rather than a fault of the command.
    static let topologyCodes: Set<String> = ["MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "LOADING", "READONLY"]
    /// Server error codes that mean "alive, but not now".
    static let overloadCodes: Set<String> = ["BUSY", "NOREPLICAS"]

    public var failureClass: RedisFailureClass {
        switch self {
        case .connectionClosed, .connectionFailed, .protocolError, .clientShutdown, .authentication:
            return .unavailable
        case .timeout, .poolAcquireTimeout, .cancelled, .busy:
            return .overloaded
        case .loading, .readOnly:
            return .topology
        case .err, .wrongType, .noScript, .invalidConfiguration:
            return .server
        case .server(let code, _):
            if Self.topologyCodes.contains(code) { return .topology }
            if Self.overloadCodes.contains(code) { return .overloaded }
            return .server
        }
    }
}
