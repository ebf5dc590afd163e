import Logging
import ServiceLifecycle
import Synchronization

/// Periodically deletes expired sessions, denylist entries and one-time tokens from stores
/// that have no native expiry (memory, SQLite). Reads never see expired entries either way;
/// the sweep only keeps the store from growing.
public struct ExpirySweeper: Service {
    public let store: any TokenStore
    public let interval: Duration
    public let logger: Logger
    /// Also swept: in-process rate-limit state, when rate limits are local.
    public let rateLimits: MemoryRateLimitStore?
    /// Also swept: kept copies of messages whose token expired (the outbox).
    public let notifier: (any Notifier)?
    private let counters = SweepCounters()

    public init(
        store: any TokenStore, rateLimits: MemoryRateLimitStore? = nil, notifier: (any Notifier)? = nil, interval: Duration = .seconds(60),
        logger: Logger
    ) {
        self.store = store
        self.rateLimits = rateLimits
        self.notifier = notifier
        self.interval = interval
        self.logger = logger
    }

    /// Sweeps run, entries removed and failed sweeps since start (for `/metrics` and stats).
    public var statistics: SweepStatistics { counters.value.withLock { $0 } }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            // Wakes early on graceful shutdown so the service group is not held up.
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            guard !Task.isShuttingDownGracefully, !Task.isCancelled else { return }
            do {
                let removed = try await store.purgeExpired() + (rateLimits?.purgeExpired() ?? 0) + (notifier?.purgeExpired() ?? 0)
                counters.value.withLock {
                    $0.runs += 1
                    $0.removed += removed
                }
                if removed > 0 {
                    logger.debug("expired entries swept", metadata: ["store": "\(store.backendName)", "removed": "\(removed)"])
                }
            } catch {
                counters.value.withLock { $0.failures += 1 }
                logger.warning("expiry sweep failed", metadata: ["store": "\(store.backendName)", "error": "\(error)"])
            }
        }
    }
}

public struct SweepStatistics: Sendable, Equatable {
    public var runs = 0
    public var removed = 0
    public var failures = 0
}

private final class SweepCounters: Sendable {
    let value = Mutex(SweepStatistics())
}
