import ServiceLifecycle
import Synchronization

/// Whether this instance should be sent traffic: not before its server listens, not once a
/// graceful shutdown has begun. `/health/ready` reads it; `/health/live` does not.
public final class Readiness: Sendable {
    public enum Phase: Int, Sendable {
        case starting, serving, stopping

        var name: String {
            switch self {
            case .starting: "starting"
            case .serving: "serving"
            case .stopping: "stopping"
            }
        }
    }

    private let value: Atomic<Int>

    public init(_ phase: Phase = .starting) { value = Atomic(phase.rawValue) }

    public var phase: Phase { Phase(rawValue: value.load(ordering: .acquiring)) ?? .stopping }

    public func serving() { value.store(Phase.serving.rawValue, ordering: .releasing) }

    public func stopping() { value.store(Phase.stopping.rawValue, ordering: .releasing) }
}

/// Marks the instance as stopping as soon as a graceful shutdown begins. List it after the
/// application in the service group: groups shut down in reverse order, so it hears of the
/// shutdown first, while the server still drains its requests.
public struct ReadinessWatch: Service {
    let readiness: Readiness

    public init(_ readiness: Readiness) { self.readiness = readiness }

    public func run() async throws {
        try? await gracefulShutdown()
        readiness.stopping()
    }
}
