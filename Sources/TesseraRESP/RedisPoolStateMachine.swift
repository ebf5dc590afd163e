import NIOCore

/// The bookkeeping of `RedisClient`'s pool, with no I/O: which connection a command gets, when
/// a new one may be opened, who waits, and who is told what when a connection comes back, a
/// connect fails or the pool shuts down. `RedisClient` holds it under its lock and carries out
/// the actions it returns (open, close, resume a waiter), so every rule here is unit-tested
/// without a server.
///
/// A connection is used in one of two ways. **Shared**: single commands and pipelines are
/// multiplexed, many in flight on one connection; the least loaded one is chosen, and another is
/// brought in once every shared connection has `commandsPerConnection` in flight. **Leased**:
/// dependent or blocking commands (a write and its `WAIT`, `SCAN` loops, `MULTI`) get a
/// connection to themselves, taken from the idle ones, opened, or taken out of sharing when its
/// last command is answered; a lease that has to wait marks one shared connection *draining*
/// (no new commands) so that it is not starved by a steady stream of shared commands.
///
/// Waiters are served first come, first served from ring buffers, leases before shared
/// commands: handing a connection over is O(1); a waiter that gives up (timeout, cancellation)
/// is removed from a dictionary at once and its place in the ring skipped when it comes up.
struct RedisPoolStateMachine<Connection: Equatable, Waiter> {
    let maximumConnections: Int
    let commandsPerConnection: Int
    /// Connections ready for a lease, the most recently used last (reused first: warm).
    private(set) var idle: [Connection] = []
    private(set) var shared: [Shared] = []
    /// Connections open or being opened: what counts against the maximum.
    private(set) var slotsInUse = 0
    /// Connections being opened to be shared (at most one at a time).
    private(set) var openingShared = 0
    private var leaseOrder = CircularBuffer<Int>()
    private var sharedOrder = CircularBuffer<Int>()
    private var waiting: [Int: Waiter] = [:]
    private var nextWaiterID = 0
    private(set) var consecutiveFailures = 0
    private(set) var retryAfter: ContinuousClock.Instant?
    private(set) var lastFailure: RedisError?
    private(set) var isShutdown = false

    struct Shared {
        var connection: Connection
        var inFlight: Int
        /// Takes no new commands: wanted for a lease, or found closed.
        var draining: Bool
    }

    init(maximumConnections: Int, commandsPerConnection: Int = 32) {
        self.maximumConnections = max(1, maximumConnections)
        self.commandsPerConnection = max(1, commandsPerConnection)
    }

    var waiterCount: Int { waiting.count }

    private func backingOff(_ now: ContinuousClock.Instant) -> Bool {
        retryAfter.map { now < $0 } ?? false
    }

    // MARK: Leases

    enum AcquireAction {
        /// Use this connection.
        case use(Connection)
        /// A slot is reserved: open a connection into it.
        case open
        /// Every slot is busy (or backing off with live connections): wait for one.
        case wait
        /// No connection at all and backing off after failed connects: fail at once.
        case failBackingOff
        case failShutdown
    }

    /// A lease wants a connection. `isActive` tells a live idle connection from one closed
    /// while idle (forgotten here; the caller need not close it). After `.wait`, the caller
    /// enqueues itself with `exclusive: true`.
    mutating func acquire(now: ContinuousClock.Instant, isActive: (Connection) -> Bool) -> AcquireAction {
        if isShutdown { return .failShutdown }
        if let connection = popLiveIdle(isActive) { return .use(connection) }
        if let index = shared.firstIndex(where: { $0.inFlight == 0 }) {
            let entry = shared.remove(at: index)
            if isActive(entry.connection) { return .use(entry.connection) }
            slotsInUse -= 1
        }
        guard slotsInUse < maximumConnections else { return .wait }
        if backingOff(now) {
            // With live connections around, waiting for one is fine; with none, the server
            // is down as far as we know.
            return slotsInUse > 0 ? .wait : .failBackingOff
        }
        slotsInUse += 1
        return .open
    }

    private mutating func popLiveIdle(_ isActive: (Connection) -> Bool) -> Connection? {
        while let connection = idle.popLast() {
            if isActive(connection) { return connection }
            slotsInUse -= 1
        }
        return nil
    }

    // MARK: Shared commands

    enum SharedAcquireAction {
        /// Send on this connection; with `openAnother`, a slot is also reserved for one more
        /// shared connection, to be opened in the background (`sharedOpened` or `connectFailed`).
        case use(Connection, openAnother: Bool)
        /// A slot is reserved: open a connection into it, to share (`sharedOpened`).
        case open
        case wait
        case failBackingOff
        case failShutdown
    }

    /// A single command or pipeline wants a connection to send on. Every `.use` must be
    /// matched by one `releaseShared`. After `.wait`, the caller enqueues itself with
    /// `exclusive: false`.
    mutating func acquireShared(now: ContinuousClock.Instant, isActive: (Connection) -> Bool) -> SharedAcquireAction {
        if isShutdown { return .failShutdown }
        while let best = leastLoaded() {
            guard isActive(shared[best].connection) else {
                // Closed under us: its commands fail and come back; send nothing more on it.
                if shared[best].inFlight == 0 {
                    shared.remove(at: best)
                    slotsInUse -= 1
                } else {
                    shared[best].draining = true
                }
                continue
            }
            shared[best].inFlight += 1
            let connection = shared[best].connection
            guard shared[best].inFlight > commandsPerConnection else { return .use(connection, openAnother: false) }
            // Busy: bring in an idle connection for the next commands, or open one.
            if let extra = popLiveIdle(isActive) {
                shared.append(Shared(connection: extra, inFlight: 0, draining: false))
                return .use(connection, openAnother: false)
            }
            guard openingShared == 0, slotsInUse < maximumConnections, !backingOff(now) else {
                return .use(connection, openAnother: false)
            }
            slotsInUse += 1
            openingShared += 1
            return .use(connection, openAnother: true)
        }
        if let connection = popLiveIdle(isActive) {
            shared.append(Shared(connection: connection, inFlight: 1, draining: false))
            return .use(connection, openAnother: false)
        }
        if openingShared > 0 { return .wait }
        guard slotsInUse < maximumConnections else { return .wait }
        if backingOff(now) { return slotsInUse > 0 ? .wait : .failBackingOff }
        slotsInUse += 1
        openingShared += 1
        return .open
    }

    private func leastLoaded() -> Int? {
        var best: Int?
        for index in shared.indices where !shared[index].draining {
            if best == nil || shared[index].inFlight < shared[best!].inFlight { best = index }
        }
        return best
    }

    /// A connection opened for sharing: it serves `forCaller` (the command that opened it, if
    /// any) and every shared command waiting, which are returned to be resumed with it. Nil when
    /// the pool shut down meanwhile: the slot is given back and the caller closes the connection.
    mutating func sharedOpened(_ connection: Connection, forCaller: Bool) -> [Waiter]? {
        openingShared -= 1
        if isShutdown {
            slotsInUse -= 1
            return nil
        }
        var served: [Waiter] = []
        while let waiter = popWaiter(from: .shared) { served.append(waiter) }
        shared.append(Shared(connection: connection, inFlight: (forCaller ? 1 : 0) + served.count, draining: false))
        return served
    }

    enum SharedReleaseAction {
        case keep
        /// Its last command answered, the connection goes to this lease.
        case handOver(Waiter, Connection)
        /// Its last command answered, the connection is done (shutdown): close it.
        case close(Connection)
        /// It was closed and is forgotten; this waiter may open a connection into its slot.
        case openFor(Waiter)
    }

    /// A shared command is answered (or failed). `broken`: the connection is closed.
    mutating func releaseShared(_ connection: Connection, broken: Bool) -> SharedReleaseAction {
        guard let index = shared.firstIndex(where: { $0.connection == connection }) else { return .keep }
        shared[index].inFlight -= 1
        if broken { shared[index].draining = true }
        guard shared[index].inFlight == 0 else { return .keep }
        if broken {
            shared.remove(at: index)
            return freeSlot().map { .openFor($0) } ?? .keep
        }
        if isShutdown {
            shared.remove(at: index)
            slotsInUse -= 1
            return .close(connection)
        }
        guard shared[index].draining || !leaseOrder.isEmpty else { return .keep }
        if let waiter = popWaiter(from: .leases) {
            shared.remove(at: index)
            return .handOver(waiter, connection)
        }
        // Drained for a lease that gave up meanwhile: back to sharing.
        shared[index].draining = false
        return .keep
    }

    // MARK: Waiters

    /// An id for a waiter about to be added (known before its continuation exists, so that a
    /// timeout or cancellation can name it).
    mutating func nextWaiter() -> Int {
        defer { nextWaiterID += 1 }
        return nextWaiterID
    }

    /// Queues a waiter; false when the pool has shut down meanwhile. A lease that waits has
    /// one shared connection drained for it, unless one is draining already.
    mutating func enqueue(_ waiter: Waiter, id: Int, exclusive: Bool = true) -> Bool {
        guard !isShutdown else { return false }
        waiting[id] = waiter
        if exclusive {
            leaseOrder.append(id)
            if !shared.contains(where: \.draining), let best = leastLoaded() { shared[best].draining = true }
        } else {
            sharedOrder.append(id)
        }
        return true
    }

    /// Takes a waiter out of the queue (its timeout fired, or its task was cancelled); nil when
    /// it was already served.
    mutating func removeWaiter(_ id: Int) -> Waiter? {
        waiting.removeValue(forKey: id)
    }

    private enum Queue { case leases, shared }

    private mutating func popWaiter(from queue: Queue) -> Waiter? {
        while let id = queue == .leases ? leaseOrder.popFirst() : sharedOrder.popFirst() {
            if let waiter = waiting.removeValue(forKey: id) { return waiter }
        }
        return nil
    }

    enum ReleaseAction {
        /// Give the connection to this lease.
        case handOver(Waiter, Connection)
        /// Share the connection with these waiting shared commands (one use each).
        case share([Waiter], Connection)
        /// Shut down: close it.
        case close(Connection)
        /// Kept idle.
        case keep
    }

    /// A healthy connection comes back from a lease.
    mutating func release(_ connection: Connection) -> ReleaseAction {
        if isShutdown {
            slotsInUse -= 1
            return .close(connection)
        }
        if let waiter = popWaiter(from: .leases) { return .handOver(waiter, connection) }
        var served: [Waiter] = []
        while let waiter = popWaiter(from: .shared) { served.append(waiter) }
        if !served.isEmpty {
            shared.append(Shared(connection: connection, inFlight: served.count, draining: false))
            return .share(served, connection)
        }
        idle.append(connection)
        return .keep
    }

    /// A slot became free (a connection dropped, an open abandoned): the first waiter may open a
    /// connection into it (returned, with whether it is a shared command), or the slot is given back.
    mutating func freeSlot() -> Waiter? {
        freeSlotWaiter()?.waiter
    }

    mutating func freeSlotWaiter() -> (waiter: Waiter, exclusive: Bool)? {
        if !isShutdown {
            if let waiter = popWaiter(from: .leases) { return (waiter, true) }
            if let waiter = popWaiter(from: .shared) {
                openingShared += 1
                return (waiter, false)
            }
        }
        slotsInUse -= 1
        return nil
    }

    // MARK: Keep-alive

    /// Checks out the connections no command is using (idle, or shared with nothing in flight)
    /// for a keep-alive `PING`: the idle ones as leases (`release` them after), the shared ones
    /// as one use each (`releaseShared` after), so that no lease can take one mid-`PING`.
    mutating func checkOutForKeepAlive() -> (leased: [Connection], shared: [Connection]) {
        let leased = idle
        idle = []
        var sharedOnes: [Connection] = []
        for index in shared.indices where shared[index].inFlight == 0 && !shared[index].draining {
            shared[index].inFlight = 1
            sharedOnes.append(shared[index].connection)
        }
        return (leased, sharedOnes)
    }

    /// Reserves slots for connections to open in the background, to share, until `minimum` are
    /// open or being opened; how many to open. None while backing off or shut down.
    mutating func reserveWarm(minimum: Int, now: ContinuousClock.Instant) -> Int {
        guard !isShutdown, !backingOff(now) else { return 0 }
        let missing = max(0, min(minimum, maximumConnections) - slotsInUse)
        slotsInUse += missing
        openingShared += missing
        return missing
    }

    // MARK: Connects and shutdown

    /// An open was not attempted (the pool is backing off): its slot goes to the next waiter
    /// (returned) or back.
    mutating func abandonOpen(shared: Bool) -> Waiter? {
        if shared { openingShared -= 1 }
        return freeSlot()
    }

    /// A connect succeeded: no more backing off.
    mutating func connected() {
        consecutiveFailures = 0
        retryAfter = nil
        lastFailure = nil
    }

    /// A connect failed: its slot is freed and the pool backs off for `delay(failures)`. When no
    /// connection is left, nobody will ever release one to the waiters: they are returned, to
    /// fail now. `shared`: the connection was being opened for sharing; the shared commands
    /// waiting for it are returned too (no other shared connection is usable, or they would not
    /// be waiting).
    mutating func connectFailed(
        _ error: RedisError, now: ContinuousClock.Instant, shared: Bool = false, delay: (Int) -> Duration
    ) -> [Waiter] {
        slotsInUse -= 1
        if shared { openingShared -= 1 }
        consecutiveFailures += 1
        lastFailure = error
        retryAfter = now + delay(consecutiveFailures)
        guard slotsInUse == 0 else {
            guard shared else { return [] }
            var failed: [Waiter] = []
            while let waiter = popWaiter(from: .shared) { failed.append(waiter) }
            return failed
        }
        return drainWaiters()
    }

    /// Shuts down: the idle and unused shared connections (to close) and every waiter (to fail).
    /// Connections in use are closed as they come back.
    mutating func shutdown() -> (idle: [Connection], waiters: [Waiter]) {
        isShutdown = true
        var connections = idle
        idle = []
        for entry in shared where entry.inFlight == 0 { connections.append(entry.connection) }
        shared.removeAll { $0.inFlight == 0 }
        for index in shared.indices { shared[index].draining = true }
        slotsInUse -= connections.count
        return (connections, drainWaiters())
    }

    private mutating func drainWaiters() -> [Waiter] {
        var drained: [Waiter] = []
        while let waiter = popWaiter(from: .leases) { drained.append(waiter) }
        while let waiter = popWaiter(from: .shared) { drained.append(waiter) }
        return drained
    }
}
