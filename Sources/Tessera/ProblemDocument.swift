import Foundation

/// The RFC 9457 body of every Tessera error, from Tessera itself or from an app's middleware,
/// so an app answers a refused token exactly as Tessera would.
public struct ProblemDocument: Sendable, Encodable, Equatable {
    public var type: String
    public var title: String
    public var status: Int
    public var detail: String
    public var code: String

    public init(status: Int, title: String, code: String, detail: String) {
        self.type = "urn:tessera:error:\(code)"
        self.title = title
        self.status = status
        self.detail = detail
        self.code = code
    }

    /// Sorted keys: the same problem is the same bytes, so failures cannot be told apart by shape.
    public func encoded() -> Data {
        (try? Self.encoder.encode(self)) ?? Data()
    }

    /// One for every problem answered (a refused token is one); safe to share across tasks.
    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return encoder
    }()
}

extension TesseraVerificationError {
    /// What an app's middleware answers: 401 with Tessera's code, or 503 `verification_unavailable`.
    public var problem: (status: Int, code: String, detail: String) {
        if let error = authError { return (401, error.code, error.detail) }
        return (503, "verification_unavailable", "The access token cannot be checked right now; try again shortly.")
    }
}
