import Testing

@testable import TesseraRESP

/// The pool's rules, without a server: connections are plain numbers, waiters names.
@Suite("Redis pool state machine")
struct RedisPoolStateMachineTests {
    typealias Pool = RedisPoolStateMachine<Int, String>
    let now = ContinuousClock.now

    func acquire(_ pool: inout Pool, alive: Set<Int> = []) -> String {
        switch pool.acquire(now: now, isActive: { alive.contains($0) }) {
        case .use(let connection): "use \(connection)"
        case .open: "open"
        case .wait: "wait"
        case .failBackingOff: "fail: backing off"
        case .failShutdown: "fail: shut down"
        }
    }

    @Test func opensUpToTheMaximumThenQueues() {
        var pool = Pool(maximumConnections: 2)
        let step1 = acquire(&pool)
        #expect(step1 == "open")
        let step2 = acquire(&pool)
        #expect(step2 == "open")
        let step3 = acquire(&pool)
        #expect(step3 == "wait")
        #expect(pool.slotsInUse == 2)
    }

    @Test func aReturnedConnectionGoesToTheFirstWaiterThenToTheIdleStack() {
        var pool = Pool(maximumConnections: 1)
        _ = acquire(&pool)
        let first = pool.nextWaiter(), second = pool.nextWaiter()
        let queued = pool.enqueue("first", id: first) && pool.enqueue("second", id: second)
        #expect(queued)
        guard case .handOver(let waiter, 7) = pool.release(7) else { Issue.record("not handed over"); return }
        #expect(waiter == "first")
        guard case .handOver(let next, 7) = pool.release(7) else { Issue.record("not handed over"); return }
        #expect(next == "second")
        guard case .keep = pool.release(7) else { Issue.record("not kept"); return }
        let step4 = acquire(&pool, alive: [7])
        #expect(step4 == "use 7")
    }

    @Test func aWaiterThatGaveUpIsSkipped() {
        var pool = Pool(maximumConnections: 1)
        _ = acquire(&pool)
        let a = pool.nextWaiter(), b = pool.nextWaiter()
        _ = pool.enqueue("a", id: a)
        _ = pool.enqueue("b", id: b)
        let removed = pool.removeWaiter(a), again = pool.removeWaiter(a)
        #expect(removed == "a" && again == nil)
        guard case .handOver(let waiter, _) = pool.release(1) else { Issue.record("not handed over"); return }
        #expect(waiter == "b")
        #expect(pool.waiterCount == 0)
    }

    @Test func aConnectionClosedWhileIdleIsForgottenAndItsSlotReused() {
        var pool = Pool(maximumConnections: 1)
        _ = acquire(&pool)
        _ = pool.release(3)
        // 3 died while idle: its slot is free again, so a new connection may be opened.
        let step5 = acquire(&pool, alive: [])
        #expect(step5 == "open")
        #expect(pool.slotsInUse == 1)
    }

    @Test func aDroppedConnectionLetsTheFirstWaiterOpenOne() {
        var pool = Pool(maximumConnections: 1)
        _ = acquire(&pool)
        let id = pool.nextWaiter()
        _ = pool.enqueue("w", id: id)
        let opener = pool.freeSlot()
        #expect(opener == "w")
        #expect(pool.slotsInUse == 1)
        let nobody = pool.freeSlot()
        #expect(nobody == nil)
        #expect(pool.slotsInUse == 0)
    }

    @Test func failedConnectsBackOffAndFailWaitersOnlyWhenNoConnectionIsLeft() {
        var pool = Pool(maximumConnections: 2)
        _ = acquire(&pool)  // a live connection
        _ = acquire(&pool)  // an attempt that fails
        let id = pool.nextWaiter()
        _ = pool.enqueue("w", id: id)
        let failedFirst = pool.connectFailed(.connectionFailed("refused"), now: now, delay: { _ in .seconds(1) })
        #expect(failedFirst.isEmpty)
        #expect(pool.consecutiveFailures == 1)
        // Backing off with a live connection around: wait for it rather than fail.
        let step6 = acquire(&pool)
        #expect(step6 == "wait")
        // The live one was dropped meanwhile and its replacement fails too: nobody is left.
        let replacement = pool.freeSlot()
        #expect(replacement == "w")
        let failedSecond = pool.connectFailed(.connectionFailed("refused"), now: now, delay: { _ in .seconds(1) })
        #expect(failedSecond.isEmpty)
        #expect(pool.slotsInUse == 0 && pool.consecutiveFailures == 2)
        // No connection and backing off: fail at once instead of queueing against a dead server.
        let step7 = acquire(&pool)
        #expect(step7 == "fail: backing off")
        pool.connected()
        #expect(pool.retryAfter == nil && pool.consecutiveFailures == 0)
    }

    @Test func theLastFailedConnectFailsEveryWaiter() {
        var pool = Pool(maximumConnections: 1)
        _ = acquire(&pool)
        for name in ["a", "b"] { _ = pool.enqueue(name, id: pool.nextWaiter()) }
        let failed = pool.connectFailed(.connectionFailed("refused"), now: now, delay: { _ in .seconds(1) })
        #expect(failed == ["a", "b"])
        let step8 = acquire(&pool)
        #expect(step8 == "fail: backing off")
        let later = pool.acquire(now: now + .seconds(2), isActive: { _ in true })
        #expect(later.isOpen)
    }

    @Test func shutdownClosesIdleFailsWaitersAndClosesBusyConnectionsAsTheyReturn() {
        var pool = Pool(maximumConnections: 2)
        _ = acquire(&pool)
        _ = acquire(&pool)
        _ = pool.release(1)
        _ = pool.enqueue("w", id: pool.nextWaiter())
        let (idle, waiters) = pool.shutdown()
        #expect(idle == [1] && waiters == ["w"])
        guard case .close(2) = pool.release(2) else { Issue.record("not closed"); return }
        #expect(pool.slotsInUse == 0)
        let step9 = acquire(&pool)
        #expect(step9 == "fail: shut down")
        let id = pool.nextWaiter()
        let queued = pool.enqueue("after", id: id)
        #expect(!queued)
    }
}

extension RedisPoolStateMachine.AcquireAction {
    var isOpen: Bool {
        if case .open = self { return true }
        return false
    }
}
