import NIOCore
import NIOSSL

/// Thrown when a command never reached the socket because the channel was already closed:
/// the only failure after which re-sending on another connection is known to be safe.
struct RESPNotSentError: Error {}

/// Sends commands and matches replies to them in order (Redis answers in order on one
/// connection), keeping push messages out of that queue.
///
/// Commands from any number of callers are multiplexed: each is encoded into one outbound
/// buffer as it arrives, and the buffer is written and flushed once per event-loop tick, so
/// concurrent callers share one write and one system call. One timer per connection bounds
/// every command in flight: it fires at the earliest deadline, and a command past its deadline
/// closes the connection (its reply could no longer be told apart from the next one's).
///
/// Lives on the channel's event loop only, so it needs no locking.
final class RESPChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = RESPValue
    /// Raw bytes that expect no reply (SUBSCRIBE in RESP3), written as they come.
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private struct Pending {
        var slot: RESPReplySlot
        /// Replies the request expects: 1, or the length of a pipeline.
        var count: Int
        var deadline: NIODeadline
    }

    private var pending = CircularBuffer<Pending>(initialCapacity: 16)
    /// Replies received so far for the pipeline at the head of `pending`.
    private var partial: [RESPValue] = []
    private var outbound: ByteBuffer
    private var flushScheduled = false
    private var timer: Scheduled<Void>?
    private var timerDeadline: NIODeadline?
    private var context: ChannelHandlerContext?
    private var isClosed = false
    private let pushHandler: (@Sendable (RESPValue) -> Void)?

    /// How many flushes carried commands, how many commands they carried, and how many timers
    /// were scheduled (tests read them).
    private(set) var flushes = 0
    private(set) var commandsWritten = 0
    private(set) var timersScheduled = 0

    init(pushHandler: (@Sendable (RESPValue) -> Void)?, allocator: ByteBufferAllocator = ByteBufferAllocator()) {
        self.pushHandler = pushHandler
        self.outbound = allocator.buffer(capacity: 1024)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        self.failAll(RedisError.connectionClosed)
    }

    // MARK: Sending

    /// Queues `commands` as one request answered into `slot` within `timeout`. Must run on
    /// the event loop.
    func submit(_ commands: [[RESPArgument]], slot: RESPReplySlot, timeout: TimeAmount) {
        guard let context, !self.isClosed else {
            slot.complete(.failure(RESPNotSentError()))
            return
        }
        let deadline = context.eventLoop.now + timeout
        for command in commands {
            RESPCommandEncoder.encode(command, into: &self.outbound)
        }
        self.commandsWritten += commands.count
        self.pending.append(Pending(slot: slot, count: commands.count, deadline: deadline))
        self.arm(deadline, context: context)
        guard !self.flushScheduled else { return }
        self.flushScheduled = true
        // Runs after every task already queued on the loop, so commands submitted meanwhile
        // from other threads go out in the same write.
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.execute { loopBound.value.flushOutbound() }
    }

    private func flushOutbound() {
        self.flushScheduled = false
        guard let context, !self.isClosed, self.outbound.readableBytes > 0 else { return }
        self.flushes += 1
        context.writeAndFlush(self.wrapOutboundOut(self.outbound), promise: nil)
        // Reuses the storage when the write completed at once (the usual case); copies otherwise.
        self.outbound.clear()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if self.isClosed {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        context.write(data, promise: promise)
    }

    // MARK: The deadline timer

    private func arm(_ deadline: NIODeadline, context: ChannelHandlerContext) {
        if let timerDeadline, timerDeadline <= deadline { return }
        self.timer?.cancel()
        self.timerDeadline = deadline
        self.timersScheduled += 1
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        self.timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
            loopBound.value.timerFired()
        }
    }

    private func timerFired() {
        self.timer = nil
        self.timerDeadline = nil
        guard let context, !self.pending.isEmpty else { return }
        let now = context.eventLoop.now
        var earliest = NIODeadline.distantFuture
        for entry in self.pending {
            if entry.deadline <= now {
                // The reply stream can no longer be matched: drop the connection.
                self.failAll(RedisError.timeout)
                context.close(promise: nil)
                return
            }
            earliest = min(earliest, entry.deadline)
        }
        self.arm(earliest, context: context)
    }

    // MARK: Receiving

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let value = self.unwrapInboundIn(data)
        if case .push = value.withoutAttributes {
            self.pushHandler?(value)
            return
        }
        guard let head = self.pending.first else {
            self.failAll(RedisError.protocolError("reply received with no command waiting for it"))
            context.close(promise: nil)
            return
        }
        if head.count == 1 {
            self.pending.removeFirst()
            head.slot.complete(.success(.one(value)))
            return
        }
        self.partial.append(value)
        if self.partial.count == head.count {
            self.pending.removeFirst()
            let replies = self.partial
            self.partial = []
            head.slot.complete(.success(.many(replies)))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.failAll(RedisError.connectionClosed)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let failure: RedisError
        switch error {
        case let error as RedisError: failure = error
        case let error as NIOSSLError: failure = .connectionFailed("TLS: \(error)")
        default: failure = .connectionClosed
        }
        self.failAll(failure)
        context.close(promise: nil)
    }

    private func failAll(_ error: RedisError) {
        self.isClosed = true
        self.timer?.cancel()
        self.timer = nil
        self.timerDeadline = nil
        self.partial = []
        while let entry = self.pending.popFirst() {
            entry.slot.complete(.failure(error))
        }
    }
}
