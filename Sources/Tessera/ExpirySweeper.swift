import Logging
import ServiceLifecycle

/// Periodically deletes expired sessions, denylist entries and one-time tokens from stores
/// that have no native expiry (memory, SQLite). Reads never see expired entries either way;
/// the sweep only keeps the store from growing.
public struct ExpirySweeper: Service {
    public let store: any TokenStore
    public let interval: Duration
    public let logger: Logger

    public init(store: any TokenStore, interval: Duration = .seconds(60), logger: Logger) {
        self.store = store
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            // Wakes early on graceful shutdown so the service group is not held up.
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            guard !Task.isShuttingDownGracefully, !Task.isCancelled else { return }
            do {
                let removed = try await store.purgeExpired()
                if removed > 0 {
                    logger.debug("expired entries swept", metadata: ["store": "\(store.backendName)", "removed": "\(removed)"])
                }
            } catch {
                logger.warning("expiry sweep failed", metadata: ["store": "\(store.backendName)", "error": "\(error)"])
            }
        }
    }
}
