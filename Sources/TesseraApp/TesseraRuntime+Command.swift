import Logging
import ServiceLifecycle
import Synchronization
import Tessera

extension TesseraRuntime {
    /// Runs one operation against the deployment's stores, with what it needs running (the
    /// Redis and PostgreSQL connections, message delivery), then shuts that down gracefully so
    /// that a message the operation queued (an MFA-reset notice) is delivered or spooled.
    public func perform<Result: Sendable>(
        logger: Logger, _ operation: @escaping @Sendable (AuthService) async throws -> Result
    ) async throws -> Result {
        let outcome = Mutex<Swift.Result<Result, any Error>?>(nil)
        let service = self.service
        let command = OneShot {
            do {
                let value = try await operation(service)
                outcome.withLock { $0 = .success(value) }
            } catch {
                outcome.withLock { $0 = .failure(error) }
            }
        }
        let group = ServiceGroup(
            configuration: .init(
                services: commandServices.map { .init(service: $0) } + [
                    .init(service: command, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup)
                ],
                logger: logger
            )
        )
        try? await group.run()
        guard let result = outcome.withLock({ $0 }) else { throw CancellationError() }
        return try result.get()
    }
}

/// A service that does one thing and returns, which ends the group it runs in.
private struct OneShot: Service {
    let body: @Sendable () async -> Void
    func run() async throws { await body() }
}
