import Foundation
import Logging
import Synchronization

/// Delivers in the background with retries, so that answering a request never waits for a
/// slow mail sender.
///
/// With a spool directory, delivery is durable: each message is written there (0600, fsync)
/// before `dispatch` returns and deleted once delivered. What is still in the spool when the
/// process stops (retries running, or all attempts failed) is delivered again by
/// `resumePending()` at the next start, unless its token has expired by then. `drain` waits
/// for deliveries in progress (graceful shutdown).
public struct NotificationDispatcher: Sendable {
    public let notifier: any Notifier
    public let spool: String?
    let logger: Logger
    let attempts: Int
    let backoff: Duration
    let clock: any TesseraClock
    private let inFlight = InFlightDeliveries()

    public init(
        notifier: any Notifier, spool: String? = nil, logger: Logger, attempts: Int = 4, backoff: Duration = .milliseconds(500),
        clock: any TesseraClock = SystemClock()
    ) {
        self.notifier = notifier
        self.spool = spool
        self.logger = logger
        self.attempts = attempts
        self.backoff = backoff
        self.clock = clock
    }

    public func dispatch(_ message: AccountMessage) {
        var spooled: String?
        if let spool {
            do {
                spooled = try Self.write(message, to: spool)
            } catch {
                // Still delivered, just not durably: the error says why (never the content).
                logger.error("message not spooled", metadata: ["kind": "\(message.kind)", "message_id": "\(message.id)", "error": "\(error)"])
            }
        }
        start(message, spooled: spooled)
    }

    /// Delivers what an earlier process left in the spool; drops messages whose token expired.
    /// Returns how many were started.
    @discardableResult
    public func resumePending() -> Int {
        guard let spool else { return 0 }
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: spool)) ?? []).filter { $0.hasSuffix(".json") }.sorted()
        var started = 0
        for name in names {
            let path = URL(fileURLWithPath: spool).appendingPathComponent(name).path
            guard let data = FileManager.default.contents(atPath: path), let message = try? AccountMessage.decoded(data) else {
                logger.warning("unreadable spooled message left in place", metadata: ["file": "\(name)"])
                continue
            }
            if let expiry = message.expiresAt, expiry <= clock.now() {
                try? FileManager.default.removeItem(atPath: path)
                logger.info("spooled message expired before delivery", metadata: ["kind": "\(message.kind)", "message_id": "\(message.id)"])
                continue
            }
            start(message, spooled: path)
            started += 1
        }
        return started
    }

    /// Waits until deliveries in progress end, at most `timeout`; true when none is left. What
    /// is left stays in the spool for the next start.
    public func drain(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while inFlight.count > 0 {
            guard ContinuousClock.now < deadline, !Task.isCancelled else {
                logger.warning("messages still being delivered at shutdown", metadata: ["count": "\(inFlight.count)", "spooled": "\(spool != nil)"])
                return false
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return true
    }

    public var deliveriesInFlight: Int { inFlight.count }

    private func start(_ message: AccountMessage, spooled: String?) {
        inFlight.add()
        Task { [self] in
            defer { inFlight.remove() }
            for attempt in 1...attempts {
                do {
                    try await notifier.deliver(message)
                    if let spooled { try? FileManager.default.removeItem(atPath: spooled) }
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
            if spooled != nil {
                logger.error("message kept in the spool after \(attempts) attempts; retried at the next start", metadata: ["kind": "\(message.kind)", "message_id": "\(message.id)"])
            } else {
                logger.error("message dropped after \(attempts) attempts", metadata: ["kind": "\(message.kind)", "message_id": "\(message.id)"])
            }
        }
    }

    static func write(_ message: AccountMessage, to spool: String) throws -> String {
        try FileManager.default.createDirectory(atPath: spool, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let stamp = Int64(message.createdAt.timeIntervalSince1970 * 1000)
        let path = URL(fileURLWithPath: spool).appendingPathComponent("\(stamp)-\(message.id).json").path
        try SecretFile.create(path: path, contents: try AccountMessage.encoded(message), what: "spooled message")
        return path
    }
}

private final class InFlightDeliveries: Sendable {
    private let value = Mutex(0)
    func add() { value.withLock { $0 += 1 } }
    func remove() { value.withLock { $0 -= 1 } }
    var count: Int { value.withLock { $0 } }
}
