import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import Tessera
import Tracing

/// RFC 6749 §6 refresh requests on async-http-client: TLS verified (the system trust store),
/// no redirects followed, no proxy, the answer bounded in size and the whole exchange in time.
/// Run it as a service: it shuts its client down when the process stops.
///
/// With a tracer, each refresh is a client span (method, host, status; never the path, query or
/// body, which carry credentials) whose `traceparent` goes to the token endpoint.
public final class HTTPUpstreamTokenClient: UpstreamTokenClient, Service {
    let client: HTTPClient
    let timeout: Duration
    let maxResponseSize: Int
    let tracer: (any Tracer)?

    public init(timeout: Duration = .seconds(5), maxResponseSize: Int = 64 * 1024, tracer: (any Tracer)? = nil) {
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow,
            timeout: .init(connect: .seconds(2), read: .seconds(Int64(max(1, timeout.components.seconds)))),
            connectionPool: HTTPClient.Configuration.ConnectionPool()
        )
        configuration.decompression = .disabled
        self.client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        self.timeout = timeout
        self.maxResponseSize = maxResponseSize
        self.tracer = tracer
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
        guard let tracer else { return try await send(request, propagating: nil) }
        return try await traced(tracer, request)
    }

    private func traced<T: Tracer>(_ tracer: T, _ request: UpstreamRefreshRequest) async throws -> UpstreamTokens {
        let span = tracer.startSpan("upstream.token_refresh", context: ServiceContext.current ?? .topLevel, ofKind: .client)
        defer { span.end() }
        span.attributes["http.request.method"] = "POST"
        if let host = URL(string: request.endpoint)?.host { span.attributes["server.address"] = host }
        var headers = HTTPHeaders()
        tracer.inject(span.context, into: &headers, using: HTTPHeadersInjector())
        do {
            let tokens = try await send(request, propagating: headers)
            span.attributes["http.response.status_code"] = 200
            return tokens
        } catch {
            // The kind of failure only: an upstream's answer is not checked for secrets.
            span.attributes["error.type"] = Self.errorType(error)
            span.setStatus(SpanStatus(code: .error))
            throw error
        }
    }

    static func errorType(_ error: any Error) -> String {
        switch error as? UpstreamFailure {
        case .invalidGrant: "invalid_grant"
        case .unavailable: "unavailable"
        default: "\(type(of: error))"
        }
    }

    private func send(_ request: UpstreamRefreshRequest, propagating trace: HTTPHeaders?) async throws -> UpstreamTokens {
        var fields = [("grant_type", "refresh_token"), ("refresh_token", request.refreshToken)]
        if let scope = request.scope { fields.append(("scope", scope)) }
        var outgoing = HTTPClientRequest(url: request.endpoint)
        outgoing.method = .POST
        outgoing.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        outgoing.headers.add(name: "Accept", value: "application/json")
        if let trace { outgoing.headers.add(contentsOf: trace) }
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

private struct HTTPHeadersInjector: Injector {
    func inject(_ value: String, forKey key: String, into headers: inout HTTPHeaders) {
        headers.replaceOrAdd(name: key, value: value)
    }
}
