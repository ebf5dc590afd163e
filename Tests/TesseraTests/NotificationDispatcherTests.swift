import Foundation
import Logging
import Synchronization
import Tessera
import Testing

/// Issue 10, finding 5: webhook messages still being retried are not lost when the process
/// stops. The spool is a real directory; the notifier is one whose answers the test decides.
@Suite("Durable notification delivery")
struct NotificationDispatcherTests {
    final class Receiver: Notifier {
        let delivered = Mutex<[AccountMessage]>([])
        let failing = Mutex(false)
        let held = Mutex(false)
        var summary: String { "test receiver" }

        func deliver(_ message: AccountMessage) async throws {
            // Bounded: a test that forgets to release fails instead of hanging.
            for _ in 0..<2000 where held.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(5)) }
            if failing.withLock({ $0 }) { throw NotifierError(description: "receiver down") }
            delivered.withLock { $0.append(message) }
        }
    }

    func withSpool(_ body: (String) async throws -> Void) async throws {
        let spool = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-spool-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: spool) }
        try await body(spool)
    }

    func files(_ spool: String) -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: spool)) ?? []).sorted() }

    func message(_ clock: ManualClock, expiresIn: TimeInterval = 3600) -> AccountMessage {
        AccountMessage(
            id: SecureRandom.identifier(), kind: AccountMessage.Kind.passwordReset, to: "ada@example.com", userID: "u1",
            token: "tsp1.u1.secret", expiresAt: clock.now().addingTimeInterval(expiresIn), createdAt: clock.now()
        )
    }

    func dispatcher(_ receiver: Receiver, _ spool: String, _ clock: ManualClock) -> NotificationDispatcher {
        NotificationDispatcher(notifier: receiver, spool: spool, logger: Logger(label: "test"), attempts: 2, backoff: .milliseconds(1), clock: clock)
    }

    @Test func aMessageThatCouldNotBeDeliveredIsDeliveredByTheNextProcess() async throws {
        try await withSpool { spool in
            let clock = ManualClock(Date())
            let down = Receiver()
            down.failing.withLock { $0 = true }
            let first = dispatcher(down, spool, clock)
            let sent = message(clock)
            first.dispatch(sent)
            #expect(await first.drain(timeout: .seconds(30)))
            #expect(down.delivered.withLock { $0 }.isEmpty)
            // Kept on disk, owner-only: the file holds a live token.
            let kept = try #require(files(spool).first)
            let attributes = try FileManager.default.attributesOfItem(atPath: "\(spool)/\(kept)")
            #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)

            // A restarted process, the receiver back.
            let up = Receiver()
            let second = dispatcher(up, spool, clock)
            #expect(second.resumePending() == 1)
            #expect(await second.drain(timeout: .seconds(30)))
            // The same message (dates in the spool keep whole seconds, as on the wire).
            let delivered = up.delivered.withLock { $0 }
            #expect(delivered.map(\.id) == [sent.id])
            #expect(delivered.first?.token == sent.token && delivered.first?.to == sent.to)
            #expect(files(spool).isEmpty)
            #expect(second.resumePending() == 0)
        }
    }

    @Test func anExpiredSpooledMessageIsDeletedNotDelivered() async throws {
        try await withSpool { spool in
            let clock = ManualClock(Date())
            let down = Receiver()
            down.failing.withLock { $0 = true }
            let first = dispatcher(down, spool, clock)
            first.dispatch(message(clock, expiresIn: 60))
            #expect(await first.drain(timeout: .seconds(30)))
            #expect(files(spool).count == 1)
            clock.advance(by: 61)
            let up = Receiver()
            #expect(dispatcher(up, spool, clock).resumePending() == 0)
            #expect(files(spool).isEmpty)
            #expect(up.delivered.withLock { $0 }.isEmpty)
        }
    }

    /// Failures are logged with the error's text: it must not quote the webhook URL, whose query
    /// or user info may carry the mail sender's credential.
    @Test func aWebhookTransportErrorDoesNotQuoteTheURL() async throws {
        let notifier = WebhookNotifier(url: try #require(URL(string: "http://user:pass-secret@127.0.0.1:1/hook?key=sender-secret")), timeout: 5)
        let error = await #expect(throws: NotifierError.self) { try await notifier.deliver(message(ManualClock(Date()))) }
        let text = "\(try #require(error))"
        #expect(!text.contains("sender-secret") && !text.contains("pass-secret") && !text.contains("127.0.0.1"), "\(text)")
    }

    @Test func drainWaitsForDeliveriesInProgress() async throws {
        try await withSpool { spool in
            let clock = ManualClock(Date())
            let slow = Receiver()
            slow.held.withLock { $0 = true }
            let dispatcher = dispatcher(slow, spool, clock)
            let sent = message(clock)
            dispatcher.dispatch(sent)
            // On disk before `dispatch` returned.
            #expect(files(spool).count == 1)
            #expect(await dispatcher.drain(timeout: .milliseconds(50)) == false)
            #expect(dispatcher.deliveriesInFlight == 1)
            slow.held.withLock { $0 = false }
            #expect(await dispatcher.drain(timeout: .seconds(30)))
            #expect(slow.delivered.withLock { $0 } == [sent])
            #expect(files(spool).isEmpty)
        }
    }
}
