import Synchronization

/// One topology refresh at a time: concurrent callers wait for the running one, and a refresh
/// is skipped when the last one ended less than `minimumAge` ago (so a burst of failing
/// commands does not flood the servers with lookups).
final class SingleFlightRefresh: Sendable {
    private struct State {
        var running: Task<Void, Never>?
        var lastRun: ContinuousClock.Instant?
        var isClosed = false
    }

    private let state = Mutex(State())

    func run(minimumAge: Duration, _ work: @escaping @Sendable () async -> Void) async {
        let task: Task<Void, Never>? = self.state.withLock { state in
            if state.isClosed { return nil }
            if let running = state.running { return running }
            if minimumAge > .zero, let last = state.lastRun, ContinuousClock.now - last < minimumAge { return nil }
            let task = Task {
                await work()
                self.state.withLock { state in
                    state.running = nil
                    state.lastRun = .now
                }
            }
            state.running = task
            return task
        }
        await task?.value
    }

    /// Cancels the running refresh; later calls do nothing.
    func close() {
        let running = self.state.withLock { state in
            state.isClosed = true
            return state.running
        }
        running?.cancel()
    }
}
