import Foundation
import Synchronization
import Tessera
import TesseraRedis

/// A bounded load of logins and logouts against a token store while Redis fails over, and
/// what it saw: every logout that was acknowledged, every failure, every success.
final class FailoverLoad: Sendable {
    struct Acknowledged: Sendable {
        var user: String
        var session: String
        var at: ContinuousClock.Instant
        /// Whether the logout found the session live (false: it was answered from a node that
        /// did not have the session, e.g. a demoted primary).
        var ended: Bool
    }

    let acknowledged = Mutex<[Acknowledged]>([])
    let failures = Mutex<[ContinuousClock.Instant]>([])
    /// When each successful login + logout started and ended, and for whom.
    let successes = Mutex<[(started: ContinuousClock.Instant, at: ContinuousClock.Instant, user: String)]>([])
    private let stopped = Atomic<Bool>(false)

    /// Runs `workers` loops of login + logout over `users` until `stop()`.
    func run(_ store: RedisTokenStore, users: [String], workers: Int = 4) async {
        await withDiscardingTaskGroup { group in
            for worker in 0..<workers {
                group.addTask {
                    var round = 0
                    while !self.stopped.load(ordering: .relaxed) {
                        round += 1
                        let user = users[(worker + round * workers) % users.count]
                        let now = Date()
                        let session = SessionRecord(
                            id: UUID().uuidString, userID: user, rotatedAt: now, createdAt: now, lastUsedAt: now,
                            idleExpiresAt: now.addingTimeInterval(600), absoluteExpiresAt: now.addingTimeInterval(3600)
                        )
                        let started = ContinuousClock.now
                        do {
                            try await store.createSession(session)
                            // The logout: acknowledged only once its replica has it.
                            let ended = try await store.revokeSession(id: session.id, userID: user, accessTTL: 900)
                            self.acknowledged.withLock { $0.append(Acknowledged(user: user, session: session.id, at: .now, ended: ended)) }
                            self.successes.withLock { $0.append((started, .now, user)) }
                        } catch {
                            self.failures.withLock { $0.append(.now) }
                            try? await Task.sleep(for: .milliseconds(20))
                        }
                    }
                }
            }
        }
    }

    func stop() { stopped.store(true, ordering: .relaxed) }

    /// The first success of a login + logout started after `instant` (for one of `users`, or
    /// any), and the failures since.
    func recovery(after instant: ContinuousClock.Instant, users: [String]? = nil) -> (failed: Int, milliseconds: Int64)? {
        guard let first = successes.withLock({ $0.filter { $0.started > instant && (users?.contains($0.user) ?? true) }.min { $0.at < $1.at } })
        else { return nil }
        return (failures.withLock { $0.filter { $0 > instant }.count }, milliseconds(first.at - instant))
    }

    /// Failed logins or logouts between two instants.
    func failures(from start: ContinuousClock.Instant, to end: ContinuousClock.Instant) -> Int {
        failures.withLock { $0.filter { $0 > start && $0 < end }.count }
    }

    /// The longest time without a success between `instant` and `end`: how long the event
    /// kept every worker from completing a login + logout.
    func longestGap(from instant: ContinuousClock.Instant, to end: ContinuousClock.Instant) -> Int64 {
        let times = [instant] + successes.withLock { $0.map(\.at).filter { $0 > instant && $0 < end } }.sorted() + [end]
        return zip(times, times.dropFirst()).map { milliseconds($1 - $0) }.max() ?? 0
    }

    /// Acknowledged logouts whose session denial is no longer in force, read through `store`.
    func lostRevocations(_ store: RedisTokenStore) async throws -> Int {
        try await lost(store).count
    }

    /// A logout is lost when its denial is gone although it ended the session, or when the
    /// session is live again. (A logout that found no session, because the login landed on a
    /// primary that was being demoted and vanished with it, leaves nothing to deny; in the
    /// service the logout also denies the presented access token.)
    func lost(_ store: RedisTokenStore) async throws -> [Acknowledged] {
        var lost: [Acknowledged] = []
        for entry in acknowledged.withLock({ $0 }) where !(try await store.isRevoked(tokenID: "none", sessionID: entry.session, userID: entry.user)) {
            let live = try await store.session(id: entry.session, userID: entry.user) != nil
            if entry.ended || live { lost.append(entry) }
        }
        return lost
    }
}

func milliseconds(_ duration: Duration) -> Int64 {
    duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
}
