import NIOCore

/// The bookkeeping of `RedisClient`'s pool, with no I/O: which connection a command gets, when
/// a new one may be opened, who waits, and who is told what when a connection comes back, a
/// connect fails or the pool shuts down. `RedisClient` holds it under its lock and carries out
/// the actions it returns (open, close, resume a waiter), so every rule here is unit-tested
/// without a server.
///
/// Waiters are served first come, first served from a ring buffer: handing a connection over is
/// O(1); a waiter that gives up (timeout, cancellation) is removed from a dictionary at once and
/// its place in the ring skipped when it comes up.
struct RedisPoolStateMachine<Connection, Waiter> {
    let maximumConnections: Int
    /// Connections ready for a command, the most recently used last (reused first: warm).
    private(set) var idle: [Connection] = []
    /// Connections open or being opened: what counts against the maximum.
    private(set) var slotsInUse = 0
    private var order = CircularBuffer<Int>()
    private var waiting: [Int: Waiter] = [:]
    private var nextWaiterID = 0
    private(set) var consecutiveFailures = 0
    private(set) var retryAfter: ContinuousClock.Instant?
    private(set) var lastFailure: RedisError?
    private(set) var isShutdown = false

    init(maximumConnections: Int) {
        self.maximumConnections = max(1, maximumConnections)
    }

    var waiterCount: Int { waiting.count }

    enum AcquireAction {
        /// Use this idle connection.
        case use(Connection)
        /// A slot is reserved: open a connection into it.
        case open
        /// Every slot is busy (or backing off with live connections): wait for one.
        case wait
        /// No connection at all and backing off after failed connects: fail at once.
        case failBackingOff
        case failShutdown
    }

    /// A command wants a connection. `isActive` tells a live idle connection from one closed
    /// while idle (forgotten here; the caller need not close it).
    mutating func acquire(now: ContinuousClock.Instant, isActive: (Connection) -> Bool) -> AcquireAction {
        if isShutdown { return .failShutdown }
        while let connection = idle.popLast() {
            if isActive(connection) { return .use(connection) }
            slotsInUse -= 1
        }
        guard slotsInUse < maximumConnections else { return .wait }
        if let retryAfter, now < retryAfter {
            // With live connections around, waiting for one is fine; with none, the server
            // is down as far as we know.
            return slotsInUse > 0 ? .wait : .failBackingOff
        }
        slotsInUse += 1
        return .open
    }

    /// An id for a waiter about to be added (known before its continuation exists, so that a
    /// timeout or cancellation can name it).
    mutating func nextWaiter() -> Int {
        defer { nextWaiterID += 1 }
        return nextWaiterID
    }

    /// Queues a waiter; false when the pool has shut down meanwhile.
    mutating func enqueue(_ waiter: Waiter, id: Int) -> Bool {
        guard !isShutdown else { return false }
        waiting[id] = waiter
        order.append(id)
        return true
    }

    /// Takes a waiter out of the queue (its timeout fired, or its task was cancelled); nil when
    /// it was already served.
    mutating func removeWaiter(_ id: Int) -> Waiter? {
        waiting.removeValue(forKey: id)
    }

    private mutating func popWaiter() -> Waiter? {
        while let id = order.popFirst() {
            if let waiter = waiting.removeValue(forKey: id) { return waiter }
        }
        return nil
    }

    enum ReleaseAction {
        /// Give the connection to this waiter.
        case handOver(Waiter, Connection)
        /// Shut down: close it.
        case close(Connection)
        /// Kept idle.
        case keep
    }

    /// A healthy connection comes back from a command.
    mutating func release(_ connection: Connection) -> ReleaseAction {
        if isShutdown {
            slotsInUse -= 1
            return .close(connection)
        }
        if let waiter = popWaiter() { return .handOver(waiter, connection) }
        idle.append(connection)
        return .keep
    }

    /// A slot became free (a connection dropped, an open abandoned): the first waiter may open a
    /// connection into it (returned), or the slot is given back.
    mutating func freeSlot() -> Waiter? {
        if !isShutdown, let waiter = popWaiter() { return waiter }
        slotsInUse -= 1
        return nil
    }

    /// A connect succeeded: no more backing off.
    mutating func connected() {
        consecutiveFailures = 0
        retryAfter = nil
        lastFailure = nil
    }

    /// A connect failed: its slot is freed and the pool backs off for `delay(failures)`. When no
    /// connection is left, nobody will ever release one to the waiters: they are returned, to
    /// fail now.
    mutating func connectFailed(_ error: RedisError, now: ContinuousClock.Instant, delay: (Int) -> Duration) -> [Waiter] {
        slotsInUse -= 1
        consecutiveFailures += 1
        lastFailure = error
        retryAfter = now + delay(consecutiveFailures)
        guard slotsInUse == 0 else { return [] }
        return drainWaiters()
    }

    /// Shuts down: the idle connections (to close) and every waiter (to fail). Connections in
    /// use are closed as they come back.
    mutating func shutdown() -> (idle: [Connection], waiters: [Waiter]) {
        isShutdown = true
        let connections = idle
        slotsInUse -= idle.count
        idle = []
        return (connections, drainWaiters())
    }

    private mutating func drainWaiters() -> [Waiter] {
        var drained: [Waiter] = []
        while let waiter = popWaiter() { drained.append(waiter) }
        order.removeAll()
        return drained
    }
}
