import Foundation

/// How OAuth2 session credentials are refreshed (`--upstream-token-endpoints`,
/// `--upstream-min-validity`).
public struct UpstreamCredentials: Sendable {
    /// URL prefixes a credential's token endpoint must start with (the SSRF guard); empty:
    /// OAuth2 credentials are refused.
    public var allowedEndpoints: [String]
    /// GET hands out an access token valid for at least this long, refreshing it first if needed.
    public var minValidity: TimeInterval = 60
    /// How long one refresher holds a credential's lease; longer than the client's timeout.
    public var leaseTTL: TimeInterval = 15
    /// Lifetime assumed when the provider's answer has no `expires_in`.
    public var assumedLifetime: TimeInterval = 300
    public var client: any UpstreamTokenClient

    public init(allowedEndpoints: [String], client: any UpstreamTokenClient) {
        self.allowedEndpoints = allowedEndpoints
        self.client = client
    }

    /// An allowed prefix: an absolute http(s) URL with a host and no user info, query or
    /// fragment. A bare origin gets a trailing `/`, so `https://idp.example` cannot admit
    /// `https://idp.example.evil.test`.
    public static func allowedPrefix(_ text: String) -> String? {
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(), ["http", "https"].contains(scheme),
            let host = components.host, !host.isEmpty, components.user == nil, components.password == nil, components.query == nil,
            components.fragment == nil
        else { return nil }
        return components.path.isEmpty ? text + "/" : text
    }

    /// Whether `endpoint` is a clean absolute http(s) URL under an allowed prefix.
    public func allows(_ endpoint: String) -> Bool {
        guard let components = URLComponents(string: endpoint), let scheme = components.scheme?.lowercased(),
            ["http", "https"].contains(scheme), components.host?.isEmpty == false, components.user == nil, components.password == nil,
            components.fragment == nil, !endpoint.contains("\\"), !components.path.split(separator: "/").contains(where: { $0 == ".." || $0 == "." })
        else { return false }
        return allowedEndpoints.contains { endpoint.hasPrefix($0) }
    }
}
