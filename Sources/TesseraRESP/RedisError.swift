/// Everything the client throws.
///
/// The split that matters to callers is `isConnectionError`: true means Redis could not be
/// reached or did not answer in time (retry later, report "unavailable"); false means Redis
/// answered and said no (a bug or a data problem; retrying will not help).
public enum RedisError: Error, Sendable, Hashable {
    // MARK: Server replies (the connection stays usable)
    /// `-ERR ...`: generic failure (syntax, wrong arguments, unknown command ...).
    case err(message: String)
    /// `-WRONGTYPE ...`: the key holds another type.
    case wrongType(message: String)
    /// `-NOSCRIPT ...`: EVALSHA for a script the server does not have cached.
    case noScript(message: String)
    /// `-LOADING ...`: the server is still loading its dataset.
    case loading(message: String)
    /// `-NOAUTH`, `-WRONGPASS`, or an AUTH rejection: credentials missing or wrong.
    case authentication(code: String, message: String)
    /// `-READONLY ...`: write sent to a replica.
    case readOnly(message: String)
    /// `-BUSY ...`: a script is running past lua-time-limit.
    case busy(message: String)
    /// Any other error reply, split into its upper-case code and the rest.
    case server(code: String, message: String)

    // MARK: No answer from the server
    /// The connection closed (or was closed by the client) before the reply arrived.
    case connectionClosed
    /// Could not open a connection (refused, unreachable, TLS failure, connect timeout), or the
    /// pool is backing off after such failures. The text is for logs.
    case connectionFailed(String)
    /// No reply within the command timeout; the connection was closed because its reply
    /// stream can no longer be matched to commands.
    case timeout
    /// Every pooled connection stayed busy for the whole acquire timeout.
    case poolAcquireTimeout
    /// The server sent bytes that are not valid RESP, or more than the decoder limits allow.
    case protocolError(String)
    /// The client was shut down.
    case clientShutdown
    /// The calling task was cancelled while waiting for a pooled connection or for a reply
    /// (the connection is then closed: its reply can no longer be matched).
    case cancelled

    // MARK: Usage
    /// A configuration (usually a URL) the client cannot use.
    case invalidConfiguration(String)

    /// Parses an error reply's text ("CODE message") into a case.
    public init(serverMessage: String) {
        let code: Substring
        let message: Substring
        if let space = serverMessage.firstIndex(of: " ") {
            code = serverMessage[..<space]
            message = serverMessage[serverMessage.index(after: space)...]
        } else {
            code = Substring(serverMessage)
            message = ""
        }
        // Redis error codes are upper-case words; anything else is an unprefixed message.
        guard !code.isEmpty, code.allSatisfy({ $0.isUppercase || $0.isNumber || $0 == "_" }) else {
            self = .server(code: "", message: serverMessage)
            return
        }
        let m = String(message)
        switch code {
        case "ERR": self = .err(message: m)
        case "WRONGTYPE": self = .wrongType(message: m)
        case "NOSCRIPT": self = .noScript(message: m)
        case "LOADING": self = .loading(message: m)
        case "NOAUTH", "WRONGPASS": self = .authentication(code: String(code), message: m)
        case "READONLY": self = .readOnly(message: m)
        case "BUSY": self = .busy(message: m)
        default: self = .server(code: String(code), message: m)
        }
    }

    /// True when Redis was unreachable or did not answer; false when it answered with an error
    /// (or the configuration is unusable).
    public var isConnectionError: Bool {
        switch self {
        case .connectionClosed, .connectionFailed, .timeout, .poolAcquireTimeout, .protocolError, .clientShutdown:
            return true
        case .err, .wrongType, .noScript, .loading, .authentication, .readOnly, .busy, .server, .invalidConfiguration,
            .cancelled:
            return false
        }
    }

    /// True when the connection the command ran on must not be used again: it failed, or a
    /// cancelled command left a reply nobody will read.
    var closesConnection: Bool { self.isConnectionError || self == .cancelled }

    /// True when this is an error reply sent by the server.
    public var isServerError: Bool {
        switch self {
        case .err, .wrongType, .noScript, .loading, .authentication, .readOnly, .busy, .server: return true
        default: return false
        }
    }

    /// The error code of a server error ("ERR", "WRONGTYPE", ...), nil for client-side errors.
    public var serverCode: String? {
        switch self {
        case .err: return "ERR"
        case .wrongType: return "WRONGTYPE"
        case .noScript: return "NOSCRIPT"
        case .loading: return "LOADING"
        case .authentication(let code, _): return code
        case .readOnly: return "READONLY"
        case .busy: return "BUSY"
        case .server(let code, _): return code
        default: return nil
        }
    }
}

extension RedisError: CustomStringConvertible {
    public var description: String {
        switch self {
        case .err(let m): return "Redis error: ERR \(m)"
        case .wrongType(let m): return "Redis error: WRONGTYPE \(m)"
        case .noScript(let m): return "Redis error: NOSCRIPT \(m)"
        case .loading(let m): return "Redis error: LOADING \(m)"
        case .authentication(let c, let m): return "Redis authentication failed: \(c) \(m)"
        case .readOnly(let m): return "Redis error: READONLY \(m)"
        case .busy(let m): return "Redis error: BUSY \(m)"
        case .server(let c, let m): return c.isEmpty ? "Redis error: \(m)" : "Redis error: \(c) \(m)"
        case .connectionClosed: return "Redis connection closed before a reply arrived"
        case .connectionFailed(let m): return "Redis unreachable: \(m)"
        case .timeout: return "Redis command timed out"
        case .poolAcquireTimeout: return "Timed out waiting for a free Redis connection"
        case .protocolError(let m): return "Redis protocol error: \(m)"
        case .clientShutdown: return "Redis client is shut down"
        case .cancelled: return "Redis command cancelled"
        case .invalidConfiguration(let m): return "Invalid Redis configuration: \(m)"
        }
    }
}
