import Foundation
import Logging

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A message for a user: a secret to use (a password-reset token) or a notice of a security
/// change (MFA turned on or off, recovery codes used or made anew). Tessera does not send mail
/// itself: a `Notifier` hands the message to whatever does.
public struct AccountMessage: Sendable, Codable, Equatable {
    public var id: String
    /// One of `AccountMessage.Kind`.
    public var kind: String
    public var to: String
    public var userID: String
    /// Only for kinds that carry a token (`password_reset`); absent from notices.
    public var token: String?
    public var expiresAt: Date?
    public var createdAt: Date

    /// The kinds of message, as written to the outbox and posted to the webhook.
    public enum Kind {
        public static let passwordReset = "password_reset"
        public static let mfaEnabled = "mfa_enabled"
        public static let mfaDisabled = "mfa_disabled"
        /// An administrator turned MFA off (`POST /v1/admin/users/{id}/mfa/reset`).
        public static let mfaReset = "mfa_reset"
        public static let recoveryCodesRegenerated = "mfa_recovery_codes_regenerated"
        public static let recoveryCodeUsed = "mfa_recovery_code_used"
    }

    public init(id: String, kind: String, to: String, userID: String, token: String? = nil, expiresAt: Date? = nil, createdAt: Date) {
        self.id = id
        self.kind = kind
        self.to = to
        self.userID = userID
        self.token = token
        self.expiresAt = expiresAt
        self.createdAt = createdAt
    }

    enum CodingKeys: String, CodingKey {
        case id, kind, to, token
        case userID = "user_id"
        case expiresAt = "expires_at"
        case createdAt = "created_at"
    }

    public static func decoded(_ data: Data) throws -> AccountMessage {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(AccountMessage.self, from: data)
    }

    public static func encoded(_ message: AccountMessage) throws -> Data {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys]
        return try encoder.encode(message)
    }
}

public protocol Notifier: Sendable {
    /// A short description for the start-up log line (never includes secrets).
    var summary: String { get }
    func deliver(_ message: AccountMessage) async throws
    /// The user's token of this kind was used or replaced: forget delivered copies of it where
    /// the notifier keeps them (the outbox). Default: nothing.
    func discard(kind: String, userID: String)
    /// Forgets kept copies whose token has expired; returns how many. Default: 0.
    func purgeExpired() -> Int
}

extension Notifier {
    public func discard(kind: String, userID: String) {}
    public func purgeExpired() -> Int { 0 }
}

/// Development default: one JSON file per message in a directory, created 0600 (the file
/// holds a live token). A file whose token was used, replaced or has expired is deleted.
public struct OutboxNotifier: Notifier {
    public let directory: String
    let clock: any TesseraClock

    public init(directory: String, clock: any TesseraClock = SystemClock()) {
        self.directory = directory
        self.clock = clock
    }

    public var summary: String { "outbox \(directory)" }

    public func deliver(_ message: AccountMessage) async throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let stamp = Int64(message.createdAt.timeIntervalSince1970 * 1000)
        let path = URL(fileURLWithPath: directory).appendingPathComponent("\(stamp)-\(message.kind)-\(message.id).json").path
        try SecretFile.create(path: path, contents: try AccountMessage.encoded(message), what: "outbox message")
    }

    public func discard(kind: String, userID: String) {
        removeMessages { $0.kind == kind && $0.userID == userID && $0.token != nil }
    }

    public func purgeExpired() -> Int {
        let now = clock.now()
        return removeMessages { message in message.expiresAt.map { $0 <= now } ?? false }
    }

    /// Notices (no token) are kept: they hold no secret and are the development record.
    @discardableResult
    private func removeMessages(where matches: (AccountMessage) -> Bool) -> Int {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var removed = 0
        for name in names where name.hasSuffix(".json") {
            let path = URL(fileURLWithPath: directory).appendingPathComponent(name).path
            guard let data = FileManager.default.contents(atPath: path), let message = try? AccountMessage.decoded(data), matches(message) else {
                continue
            }
            if (try? FileManager.default.removeItem(atPath: path)) != nil { removed += 1 }
        }
        return removed
    }
}

/// Production: POSTs the message as JSON to a mail sender's webhook. A non-2xx answer or a
/// transport error is an error; `NotificationDispatcher` retries.
public struct WebhookNotifier: Notifier {
    public let url: URL
    public let timeout: TimeInterval

    public init(url: URL, timeout: TimeInterval = 10) {
        self.url = url
        self.timeout = timeout
    }

    public var summary: String {
        // The URL may carry a credential (query or userinfo): show scheme, host and path only.
        var components = URLComponents(url: url, resolvingAgainstBaseURL: false)
        components?.user = nil
        components?.password = nil
        components?.query = nil
        return "webhook \(components?.string ?? "(url)")"
    }

    public func deliver(_ message: AccountMessage) async throws {
        var request = URLRequest(url: url, timeoutInterval: timeout)
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = try AccountMessage.encoded(message)
        let response: URLResponse
        do {
            (_, response) = try await URLSession.shared.data(for: request)
        } catch {
            // Foundation's error text quotes the URL, which may carry the sender's credential.
            let error = error as NSError
            throw NotifierError(description: "webhook request failed (\(error.domain) \(error.code))")
        }
        guard let status = (response as? HTTPURLResponse)?.statusCode, (200..<300).contains(status) else {
            throw NotifierError(description: "webhook answered \((response as? HTTPURLResponse)?.statusCode ?? 0)")
        }
    }
}

public struct NotifierError: Error, CustomStringConvertible {
    public var description: String

    public init(description: String) {
        self.description = description
    }
}
