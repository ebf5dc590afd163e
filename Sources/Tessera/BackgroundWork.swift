import Synchronization

/// Small jobs run off the request path, at most `limit` at a time: a request that only needs
/// to start work (e.g. `password/forgot`) answers in the same time whatever the work finds.
/// Beyond the limit a job is refused (the caller logs it) instead of queueing without bound.
final class BackgroundWork: Sendable {
    private let running = Mutex(0)
    let limit: Int

    init(limit: Int) {
        self.limit = limit
    }

    /// Starts the job unless `limit` jobs are running; false when refused.
    func submit(_ job: @escaping @Sendable () async -> Void) -> Bool {
        let admitted = running.withLock { count in
            guard count < limit else { return false }
            count += 1
            return true
        }
        guard admitted else { return false }
        Task {
            await job()
            self.running.withLock { $0 -= 1 }
        }
        return true
    }

    var inFlight: Int { running.withLock { $0 } }
}
