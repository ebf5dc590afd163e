import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import Tessera

/// RFC 6749 §6 refresh requests on async-http-client: TLS verified (the system trust store),
/// no redirects followed, no proxy, the answer bounded in size and the whole exchange in time.
/// Run it as a service: it shuts its client down when the process stops.
public final class HTTPUpstreamTokenClient: UpstreamTokenClient, Service {
    let client: HTTPClient
    let timeout: Duration
    let maxResponseSize: Int

    public init(timeout: Duration = .seconds(5), maxResponseSize: Int = 64 * 1024) {
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow,
            timeout: .init(connect: .seconds(2), read: .seconds(Int64(max(1, timeout.components.seconds)))),
            connectionPool: HTTPClient.Configuration.ConnectionPool()
        )
        configuration.decompression = .disabled
        self.client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        self.timeout = timeout
        self.maxResponseSize = maxResponseSize
    }

    public func run() async throws {
        try? await gracefulShutdown()
        try await shutdown()
    }

    /// For embedders that do not run it as a service.
    public func shutdown() async throws {
        try await client.shutdown()
    }

    public func refresh(_ request: UpstreamRefreshRequest) async throws -> UpstreamTokens {
        var fields = [("grant_type", "refresh_token"), ("refresh_token", request.refreshToken)]
        if let scope = request.scope { fields.append(("scope", scope)) }
        var outgoing = HTTPClientRequest(url: request.endpoint)
        outgoing.method = .POST
        outgoing.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        outgoing.headers.add(name: "Accept", value: "application/json")
        if let secret = request.clientSecret {
            // client_secret_basic (RFC 6749 §2.3.1): both parts form-encoded first.
            let pair = "\(Self.formEncoded(request.clientID)):\(Self.formEncoded(secret))"
            outgoing.headers.add(name: "Authorization", value: "Basic \(Data(pair.utf8).base64EncodedString())")
        } else {
            fields.append(("client_id", request.clientID))
        }
        outgoing.body = .bytes(ByteBuffer(string: fields.map { "\($0)=\(Self.formEncoded($1))" }.joined(separator: "&")))

        let (status, body): (HTTPResponseStatus, ByteBuffer)
        let sent = outgoing
        do {
            (status, body) = try await withDeadline(timeout) { [client, maxResponseSize, timeout] in
                let response = try await client.execute(sent, timeout: .nanoseconds(Int64(timeout / .nanoseconds(1))))
                return (response.status, try await response.body.collect(upTo: maxResponseSize))
            }
        } catch is NIOTooManyBytesError {
            throw UpstreamFailure.unavailable("answer larger than \(maxResponseSize) bytes")
        } catch let failure as UpstreamFailure {
            throw failure
        } catch {
            throw UpstreamFailure.unavailable("\(type(of: error))")
        }
        return try Self.tokens(status: status, body: Data(body.readableBytesView))
    }

    /// RFC 6749 §5.1 / §5.2.
    static func tokens(status: HTTPResponseStatus, body: Data) throws -> UpstreamTokens {
        let json = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any]
        guard status == .ok else {
            if (400..<500).contains(status.code), json?["error"] as? String == "invalid_grant" { throw UpstreamFailure.invalidGrant }
            throw UpstreamFailure.unavailable("token endpoint answered \(status.code)")
        }
        guard let json, let accessToken = json["access_token"] as? String, !accessToken.isEmpty else {
            throw UpstreamFailure.unavailable("token endpoint answered 200 without an access_token")
        }
        let expiresIn = (json["expires_in"] as? NSNumber).map { $0.intValue }
        let refreshToken = (json["refresh_token"] as? String).flatMap { $0.isEmpty ? nil : $0 }
        return UpstreamTokens(
            accessToken: accessToken, tokenType: json["token_type"] as? String ?? "Bearer", expiresIn: expiresIn.map { max(0, $0) },
            refreshToken: refreshToken
        )
    }

    /// Everything but RFC 3986's unreserved ASCII characters is percent-encoded.
    static func formEncoded(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: unreserved) ?? ""
    }

    private static let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
}

/// Runs `body`, cancelling it when `limit` passes first.
func withDeadline<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
            throw UpstreamFailure.unavailable("no answer within \(limit)")
        }
        return value
    }
}
