import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// What the throwaway-server helpers share: starting a child that can receive signals, and
// ending it by PID within a bound.

/// Runs `process` with an empty signal mask. Swift concurrency's threads block almost every
/// signal and a child inherits its parent thread's mask, so without this a server would never
/// see SIGTERM/SIGINT and could only be ended with SIGKILL. Synchronous on purpose: the mask is
/// per thread and must be restored before any suspension point moves the task elsewhere.
public func runWithSignalsUnblocked(_ process: Process) throws {
    var nothing = sigset_t()
    var previous = sigset_t()
    sigemptyset(&nothing)
    pthread_sigmask(SIG_SETMASK, &nothing, &previous)
    defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
    try process.run()
}

/// `kill(2)` under a name that does not clash with the helpers' own `kill()` methods.
public func sendSignal(_ pid: Int32, _ signal: Int32) {
    _ = kill(pid, signal)
}

/// Sends `signal`, waits up to `grace` for the process to exit, then SIGKILLs it and waits.
public func terminate(_ process: Process, with signal: Int32, grace: Duration) async {
    if process.isRunning {
        sendSignal(process.processIdentifier, signal)
    }
    let clock = ContinuousClock()
    let deadline = clock.now + grace
    while process.isRunning, clock.now < deadline {
        try? await Task.sleep(for: .milliseconds(10))
    }
    if process.isRunning {
        sendSignal(process.processIdentifier, SIGKILL)
        while process.isRunning { try? await Task.sleep(for: .milliseconds(10)) }
    }
}

/// Runs `body`, then `cleanup` whether `body` returned or threw.
public func withCleanup<T>(_ cleanup: () async -> Void, _ body: () async throws -> T) async throws -> T {
    let result: T
    do {
        result = try await body()
    } catch {
        await cleanup()
        throw error
    }
    await cleanup()
    return result
}
