import NIOCore
import NIOSSL

/// What `RESPConnection` hands to the channel: the encoded bytes of one or more commands and
/// one promise per expected reply, so a pipeline goes out as a single write.
struct RESPRequest: Sendable {
    var bytes: ByteBuffer
    var promises: [EventLoopPromise<RESPValue>]
    var timeout: TimeAmount?
}

/// Thrown when a command never reached the socket because the channel was already closed:
/// the only failure after which re-sending on another connection is known to be safe.
struct RESPNotSentError: Error {}

/// Matches replies to commands in order (Redis answers in order on one connection) and keeps
/// push messages out of that queue.
///
/// Lives on the channel's event loop only, so it needs no locking.
final class RESPChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = RESPValue
    typealias OutboundIn = RESPRequest
    typealias OutboundOut = ByteBuffer

    private struct Pending {
        var promise: EventLoopPromise<RESPValue>
        /// Set on the last reply of a request only: it bounds the whole request.
        var timeout: Scheduled<Void>?
    }

    private var pending = CircularBuffer<Pending>(initialCapacity: 16)
    private var isClosed = false
    private let pushHandler: (@Sendable (RESPValue) -> Void)?

    init(pushHandler: (@Sendable (RESPValue) -> Void)?) {
        self.pushHandler = pushHandler
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = self.unwrapOutboundIn(data)
        if self.isClosed {
            request.promises.forEach { $0.fail(RESPNotSentError()) }
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        for (index, replyPromise) in request.promises.enumerated() {
            var entry = Pending(promise: replyPromise, timeout: nil)
            if index == request.promises.count - 1, let timeout = request.timeout {
                let loopBoundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
                entry.timeout = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
                    // The reply stream can no longer be matched: drop the connection.
                    self.failAll(RedisError.timeout)
                    loopBoundContext.value.close(promise: nil)
                }
            }
            self.pending.append(entry)
        }
        context.write(self.wrapOutboundOut(request.bytes), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let value = self.unwrapInboundIn(data)
        if case .push = value.withoutAttributes {
            self.pushHandler?(value)
            return
        }
        guard let first = self.pending.popFirst() else {
            self.failAll(RedisError.protocolError("reply received with no command waiting for it"))
            context.close(promise: nil)
            return
        }
        first.timeout?.cancel()
        first.promise.succeed(value)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.isClosed = true
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
        while let entry = self.pending.popFirst() {
            entry.timeout?.cancel()
            entry.promise.fail(error)
        }
    }
}
