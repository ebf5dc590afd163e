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

/// Shared (multiplexed) use of the pool's connections beside leases.
@Suite("Redis pool state machine: shared connections")
struct RedisPoolSharedTests {
    typealias Pool = RedisPoolStateMachine<Int, String>
    let now = ContinuousClock.now

    func share(_ pool: inout Pool, alive: Set<Int> = [1, 2, 3, 4]) -> String {
        switch pool.acquireShared(now: now, isActive: { alive.contains($0) }) {
        case .use(let connection, let openAnother): openAnother ? "use \(connection) + open another" : "use \(connection)"
        case .open: "open"
        case .wait: "wait"
        case .failBackingOff: "fail: backing off"
        case .failShutdown: "fail: shut down"
        }
    }

    @Test func theFirstCommandOpensOneConnectionAndTheOthersWaitForItThenShareIt() {
        var pool = Pool(maximumConnections: 4, commandsPerConnection: 2)
        let first = share(&pool)
        #expect(first == "open")
        // While it opens, nobody opens a second one.
        let second = share(&pool), third = share(&pool)
        #expect(second == "wait" && third == "wait")
        _ = pool.enqueue("second", id: pool.nextWaiter(), exclusive: false)
        _ = pool.enqueue("third", id: pool.nextWaiter(), exclusive: false)
        let served = pool.sharedOpened(1, forCaller: true)
        #expect(served == ["second", "third"])
        #expect(pool.shared.map(\.inFlight) == [3])
        #expect(pool.slotsInUse == 1)
    }

    @Test func commandsGoToTheLeastLoadedConnectionAndABusyOneBringsInAnother() {
        var pool = Pool(maximumConnections: 3, commandsPerConnection: 2)
        _ = share(&pool)
        _ = pool.sharedOpened(1, forCaller: true)
        let second = share(&pool)
        #expect(second == "use 1")
        // Past two in flight, the command still goes out at once, and one more is opened.
        let third = share(&pool)
        #expect(third == "use 1 + open another")
        let fourth = share(&pool)
        #expect(fourth == "use 1")  // only one background open at a time
        _ = pool.sharedOpened(2, forCaller: false)
        let fifth = share(&pool)
        #expect(fifth == "use 2")
        #expect(pool.shared.map(\.inFlight) == [4, 1])
        for _ in 0..<4 { _ = pool.releaseShared(1, broken: false) }
        let sixth = share(&pool)
        #expect(sixth == "use 1")
    }

    @Test func aLeaseTakesAnUnusedSharedConnectionOrDrainsOneAndGetsItWhenItsLastCommandIsAnswered() {
        var pool = Pool(maximumConnections: 1, commandsPerConnection: 8)
        _ = share(&pool)
        _ = pool.sharedOpened(1, forCaller: true)
        _ = share(&pool)
        // Both of 1's commands are in flight and no slot is left: the lease waits, and 1 drains.
        guard case .wait = pool.acquire(now: now, isActive: { _ in true }) else { Issue.record("did not wait"); return }
        _ = pool.enqueue("lease", id: pool.nextWaiter())
        #expect(pool.shared.first?.draining == true)
        // No new command is put on a draining connection.
        let meanwhile = share(&pool)
        #expect(meanwhile == "wait")
        _ = pool.enqueue("shared", id: pool.nextWaiter(), exclusive: false)
        guard case .keep = pool.releaseShared(1, broken: false) else { Issue.record("handed over too early"); return }
        guard case .handOver("lease", 1) = pool.releaseShared(1, broken: false) else { Issue.record("not handed over"); return }
        #expect(pool.shared.isEmpty)
        // The lease ends; the shared command waiting gets the connection back for sharing.
        guard case .share(["shared"], 1) = pool.release(1) else { Issue.record("not shared again"); return }
        #expect(pool.shared.map(\.inFlight) == [1])
    }

    @Test func anIdleSharedConnectionIsLeasedAtOnce() {
        var pool = Pool(maximumConnections: 1)
        _ = share(&pool)
        _ = pool.sharedOpened(1, forCaller: true)
        _ = pool.releaseShared(1, broken: false)
        guard case .use(1) = pool.acquire(now: now, isActive: { _ in true }) else { Issue.record("not leased"); return }
        guard case .keep = pool.release(1) else { Issue.record("not kept"); return }
        // Back idle: the next shared command picks it up again.
        let next = share(&pool)
        #expect(next == "use 1")
    }

    @Test func aBrokenSharedConnectionTakesNoMoreCommandsAndFreesItsSlotWhenItsLastFails() {
        var pool = Pool(maximumConnections: 1)
        _ = share(&pool)
        _ = pool.sharedOpened(1, forCaller: true)
        _ = share(&pool)
        guard case .keep = pool.releaseShared(1, broken: true) else { Issue.record("freed too early"); return }
        let meanwhile = share(&pool)
        #expect(meanwhile == "wait")
        _ = pool.enqueue("w", id: pool.nextWaiter(), exclusive: false)
        guard case .openFor("w") = pool.releaseShared(1, broken: true) else { Issue.record("slot not handed on"); return }
        #expect(pool.slotsInUse == 1 && pool.openingShared == 1)
    }

    @Test func aClosedSharedConnectionIsSkipped() {
        var pool = Pool(maximumConnections: 2)
        _ = share(&pool)
        _ = pool.sharedOpened(1, forCaller: true)
        _ = pool.releaseShared(1, broken: false)
        // 1 died while unused: forgotten, and a new one is opened into its slot.
        let next = share(&pool, alive: [])
        #expect(next == "open")
        #expect(pool.slotsInUse == 1)
    }

    @Test func aFailedSharedOpenFailsTheCommandsWaitingForIt() {
        var pool = Pool(maximumConnections: 2)
        _ = pool.acquire(now: now, isActive: { _ in true })  // a lease holds one connection
        _ = share(&pool)
        _ = pool.enqueue("w", id: pool.nextWaiter(), exclusive: false)
        let failed = pool.connectFailed(.connectionFailed("refused"), now: now, shared: true, delay: { _ in .seconds(1) })
        #expect(failed == ["w"])
        #expect(pool.openingShared == 0 && pool.slotsInUse == 1)
    }

    @Test func shutdownClosesUnusedSharedConnectionsAndTheBusyOnesWhenTheirLastCommandReturns() {
        var pool = Pool(maximumConnections: 3, commandsPerConnection: 1)
        _ = share(&pool)
        _ = pool.sharedOpened(1, forCaller: true)
        _ = share(&pool)  // 1 + open another
        _ = pool.sharedOpened(2, forCaller: false)
        let (idle, _) = pool.shutdown()
        #expect(idle == [2])
        guard case .keep = pool.releaseShared(1, broken: false) else { Issue.record("closed early"); return }
        guard case .close(1) = pool.releaseShared(1, broken: false) else { Issue.record("not closed"); return }
        #expect(pool.slotsInUse == 0)
        let after = share(&pool)
        #expect(after == "fail: shut down")
    }
}

extension RedisPoolSharedTests {
    @Test func warmConnectionsAreReservedUpToTheMinimumAndUnusedOnesAreListedForKeepAlive() {
        var pool = Pool(maximumConnections: 4)
        let opens = pool.reserveWarm(minimum: 2, now: now)
        #expect(opens == 2 && pool.slotsInUse == 2)
        _ = pool.sharedOpened(1, forCaller: false)
        _ = pool.sharedOpened(2, forCaller: false)
        let again = pool.reserveWarm(minimum: 2, now: now)
        #expect(again == 0)
        _ = share(&pool)  // one command in flight on 1 or 2
        // The keep-alive checks out only the unused one, as one use, so no lease takes it mid-PING.
        let (leased, checkedOut) = pool.checkOutForKeepAlive()
        #expect(leased.isEmpty && checkedOut.count == 1)
        // A lease meanwhile opens a connection of its own rather than take the one being pinged.
        let step = pool.acquire(now: now, isActive: { _ in true })
        #expect(step.isOpen)
        _ = pool.abandonOpen(shared: false)
        // Its PING failed: the slot is freed and the minimum is reserved again.
        _ = pool.releaseShared(checkedOut[0], broken: true)
        #expect(pool.slotsInUse == 1)
        let replace = pool.reserveWarm(minimum: 2, now: now)
        #expect(replace == 1)
        _ = pool.sharedOpened(3, forCaller: false)
        // Backing off after a failed connect: no warm-up attempts meanwhile.
        _ = pool.reserveWarm(minimum: 3, now: now)
        _ = pool.connectFailed(.connectionFailed("refused"), now: now, shared: true, delay: { _ in .seconds(1) })
        let whileBackingOff = pool.reserveWarm(minimum: 3, now: now)
        #expect(whileBackingOff == 0)
    }
}
