import HTTPTypes

/// How a client wants its tokens: in the JSON body (`bearer`, the default) or in cookies,
/// asked for with `Tessera-Transport: cookie`.
enum TokenTransport: Sendable, Equatable {
    case bearer, cookie

    static let header = HTTPField.Name("Tessera-Transport")!

    init(_ request: HTTPFields) throws {
        switch request[Self.header]?.lowercased() {
        case nil, "bearer": self = .bearer
        case "cookie": self = .cookie
        case let other?:
            throw APIError.invalidRequest("Tessera-Transport must be bearer or cookie, not '\(other.prefix(40))'")
        }
    }
}
