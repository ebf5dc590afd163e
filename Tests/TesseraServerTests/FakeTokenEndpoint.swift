import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Synchronization

/// A small OAuth2 token endpoint on loopback (RFC 6749 §6) that counts its calls and answers
/// as the test tells it: rotating tokens, `invalid_grant`, 500, too slowly, or too much.
final class FakeTokenEndpoint: Sendable {
    enum Mode: Sendable {
        case rotate(expiresIn: Int)
        case invalidGrant
        case serverError
        case slow(Duration)
        case oversized
        case redirect
    }

    struct State {
        var mode = Mode.rotate(expiresIn: 3600)
        var calls = 0
        /// The refresh tokens presented, in order.
        var presented: [String] = []
        var lastAuthorization: String?
        var lastTraceparent: String?
    }

    let state = Mutex(State())
    var calls: Int { state.withLock { $0.calls } }
    var presented: [String] { state.withLock { $0.presented } }
    func set(_ mode: Mode) { state.withLock { $0.mode = mode } }

    var router: Router<BasicRequestContext> {
        let router = Router()
        router.post("token") { request, _ in
            let body = try await request.body.collect(upTo: 16_384)
            let form = Dictionary(
                String(buffer: body).split(separator: "&").map { pair -> (String, String) in
                    let parts = pair.split(separator: "=", maxSplits: 1).map { String($0).removingPercentEncoding ?? "" }
                    return (parts[0], parts.count > 1 ? parts[1] : "")
                }, uniquingKeysWith: { $1 }
            )
            let (mode, call) = self.state.withLock { state in
                state.calls += 1
                state.presented.append(form["refresh_token"] ?? "")
                state.lastAuthorization = request.headers[.authorization]
                state.lastTraceparent = request.headers[HTTPField.Name("traceparent")!]
                return (state.mode, state.calls)
            }
            guard form["grant_type"] == "refresh_token" else { return Self.json(#"{"error":"unsupported_grant_type"}"#, .badRequest) }
            switch mode {
            case .rotate(let expiresIn):
                // Long enough for every concurrent caller to be waiting on this one refresh.
                try await Task.sleep(for: .milliseconds(300))
                return Self.json(#"{"access_token":"at-\#(call)","token_type":"Bearer","expires_in":\#(expiresIn),"refresh_token":"rt-\#(call)"}"#)
            case .invalidGrant:
                try await Task.sleep(for: .milliseconds(300))
                return Self.json(#"{"error":"invalid_grant","error_description":"refresh token revoked"}"#, .badRequest)
            case .serverError:
                return Self.json(#"{"error":"temporarily_unavailable"}"#, .internalServerError)
            case .slow(let delay):
                try await Task.sleep(for: delay)
                return Self.json(#"{"access_token":"too-late","expires_in":3600}"#)
            case .oversized:
                let padding = String(repeating: "x", count: 200_000)
                return Self.json(#"{"access_token":"big","expires_in":3600,"padding":"\#(padding)"}"#)
            case .redirect:
                return Response(status: .temporaryRedirect, headers: [.location: "http://127.0.0.1:1/token"])
            }
        }
        return router
    }

    static func json(_ text: String, _ status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// Serves on a free loopback port for the duration of `body`, which gets the endpoint's URL.
    func serve<T: Sendable>(_ body: @escaping @Sendable (String) async throws -> T) async throws -> T {
        try await Application(router: router).test(.live) { client in
            try await body("http://127.0.0.1:\(client.port!)/token")
        }
    }
}
