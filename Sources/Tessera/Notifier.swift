import Foundation
import Logging

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A message for a user that carries a secret (a password-reset token). Tessera does not send
/// mail itself: a `Notifier` hands the message to whatever does.
public struct AccountMessage: Sendable, Codable, Equatable {
    public var id: String
    /// "password_reset"
    public var kind: String
    public var to: String
    public var userID: String
    public var token: String
    public var expiresAt: Date
    public var createdAt: Date

    enum CodingKeys: String, CodingKey {
        case id, kind, to, token
        case userID = "user_id"
        case expiresAt = "expires_at"
        case createdAt = "created_at"
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
}

/// Development default: one JSON file per message in a directory, created 0600 (the file
/// holds a live token).
public struct OutboxNotifier: Notifier {
    public let directory: String

    public init(directory: String) {
        self.directory = directory
    }

    public var summary: String { "outbox \(directory)" }

    public func deliver(_ message: AccountMessage) async throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let stamp = Int64(message.createdAt.timeIntervalSince1970 * 1000)
        let path = URL(fileURLWithPath: directory).appendingPathComponent("\(stamp)-\(message.kind)-\(message.id).json").path
        try SecretFile.create(path: path, contents: try AccountMessage.encoded(message), what: "outbox message")
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
        let (_, response) = try await URLSession.shared.data(for: request)
        guard let status = (response as? HTTPURLResponse)?.statusCode, (200..<300).contains(status) else {
            throw NotifierError(description: "webhook answered \((response as? HTTPURLResponse)?.statusCode ?? 0)")
        }
    }
}

public struct NotifierError: Error, CustomStringConvertible {
    public var description: String
}

/// Delivers in the background with retries, so that answering "password/forgot" takes the same
/// time whether or not the account exists, and a slow mail sender never holds a request.
public struct NotificationDispatcher: Sendable {
    public let notifier: any Notifier
    let logger: Logger
    let attempts: Int
    let backoff: Duration

    public init(notifier: any Notifier, logger: Logger, attempts: Int = 4, backoff: Duration = .milliseconds(500)) {
        self.notifier = notifier
        self.logger = logger
        self.attempts = attempts
        self.backoff = backoff
    }

    public func dispatch(_ message: AccountMessage) {
        Task { [self] in
            for attempt in 1...attempts {
                do {
                    try await notifier.deliver(message)
                    logger.info("message delivered", metadata: ["kind": "\(message.kind)", "message_id": "\(message.id)"])
                    return
                } catch {
                    // The message carries a token: log its id, never its content.
                    logger.warning(
                        "message delivery failed",
                        metadata: ["kind": "\(message.kind)", "message_id": "\(message.id)", "attempt": "\(attempt)", "error": "\(error)"]
                    )
                    if attempt < attempts { try? await Task.sleep(for: backoff * (1 << (attempt - 1))) }
                }
            }
            logger.error("message dropped after \(attempts) attempts", metadata: ["kind": "\(message.kind)", "message_id": "\(message.id)"])
        }
    }
}
