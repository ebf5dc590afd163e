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
    /// Written byte by byte (one for every refused token), the bytes `JSONEncoder` with
    /// `.sortedKeys` writes (pinned by `ProblemDocumentTests`).
    public func encoded() -> Data {
        Data(self.bytes())
    }

    public func bytes() -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(96 + self.detail.utf8.count + 2 * self.code.utf8.count)
        output.append(contentsOf: #"{"code":"#.utf8)
        JSONString.append(self.code, escapingSlashes: true, to: &output)
        output.append(contentsOf: #","detail":"#.utf8)
        JSONString.append(self.detail, escapingSlashes: true, to: &output)
        output.append(contentsOf: #","status":"#.utf8)
        output.append(contentsOf: String(self.status).utf8)
        output.append(contentsOf: #","title":"#.utf8)
        JSONString.append(self.title, escapingSlashes: true, to: &output)
        output.append(contentsOf: #","type":"#.utf8)
        JSONString.append(self.type, escapingSlashes: true, to: &output)
        output.append(UInt8(ascii: "}"))
        return output
    }
}

extension TesseraVerificationError {
    /// What an app's middleware answers: 401 with Tessera's code, or 503 `verification_unavailable`.
    public var problem: (status: Int, code: String, detail: String) {
        if let error = authError { return (401, error.code, error.detail) }
        return (503, "verification_unavailable", "The access token cannot be checked right now; try again shortly.")
    }
}
