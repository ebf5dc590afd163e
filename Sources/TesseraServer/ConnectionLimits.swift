import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes

/// How the HTTP server bounds what one client can hold: time to send a request head, time a
/// keep-alive connection may sit idle, and how many connections are served at once.
///
/// Without these, a client that trickles a header one byte at a time keeps its connection, and
/// a few hundred such clients keep hundreds of sockets, for as long as they like.
public struct ConnectionLimits: Sendable {
    /// A request head must arrive in full within this time of its first byte.
    public var headerTimeout: Duration = .seconds(10)
    /// A connection with no request in progress is closed after this time.
    public var idleTimeout: Duration = .seconds(60)
    /// Connections served at once; more wait in the listen backlog until one closes.
    public var maxConnections: Int = 1024

    public init() {}
}

extension TesseraHTTP {
    /// HTTP/1.1 with `limits` applied.
    public static func server(_ limits: ConnectionLimits) -> HTTPServerBuilder {
        let configuration = HTTP1Channel.Configuration(
            additionalChannelHandlers: [RequestHeadTracker()], idleTimeout: TimeAmount(limits.idleTimeout)
        )
        return HTTPServerBuilder { responder in
            HeadDeadlineChannel(base: HTTP1Channel(responder: responder, configuration: configuration), headerTimeout: limits.headerTimeout)
        }
    }

    /// The server configuration for `address` with the connection cap of `limits`.
    public static func serverConfiguration(
        address: BindAddress, limits: ConnectionLimits, logger: Logger
    ) -> ApplicationConfiguration {
        ApplicationConfiguration(
            address: address, serverName: "tessera", availableConnectionsDelegate: .maximum(limits.maxConnections, logger: logger)
        )
    }
}

/// HTTP/1.1 with one more handler in front of the parser, which sees raw bytes and so can time
/// a request head from its first byte.
struct HeadDeadlineChannel: ServerChildChannel {
    let base: HTTP1Channel
    let headerTimeout: Duration

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<HTTP1Channel.Value> {
        do {
            try channel.pipeline.syncOperations.addHandler(HeadDeadlineHandler(timeout: TimeAmount(headerTimeout), logger: logger))
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
        return base.setup(channel: channel, logger: logger)
    }

    func handle(value: HTTP1Channel.Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

/// What the parsed side tells the raw side, as user outbound events.
enum RequestHeadEvent {
    /// A complete request head was parsed.
    case received
    /// The response ended; the next bytes start a new request head.
    case awaited
}

/// In front of the parser: the first byte of a request head sets a deadline, a parsed head
/// clears it, and a deadline reached closes the connection.
///
/// One timer per connection, not one per request: it is armed when a head starts and none is
/// armed, and when it fires it closes the connection, re-arms for the head now in progress (one
/// that started after the timer was set), or stops. A keep-alive connection serving requests
/// back to back schedules a timer once per `timeout`, instead of scheduling and cancelling one
/// for every request.
final class HeadDeadlineHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let timeout: TimeAmount
    private let logger: Logger
    private var awaitingHead = true
    /// When the head in progress must be complete; nil while none is.
    private var headDeadline: NIODeadline?
    private var timer: Scheduled<Void>?

    init(timeout: TimeAmount, logger: Logger) {
        self.timeout = timeout
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if awaitingHead, headDeadline == nil, unwrapInboundIn(data).readableBytes > 0 {
            let deadline = context.eventLoop.now + timeout
            headDeadline = deadline
            if timer == nil { arm(context, at: deadline) }
        }
        context.fireChannelRead(data)
    }

    private func arm(_ context: ChannelHandlerContext, at deadline: NIODeadline) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(deadline: deadline) {
            let (handler, context) = loopBound.value
            handler.timerFired(context)
        }
    }

    private func timerFired(_ context: ChannelHandlerContext) {
        timer = nil
        guard let headDeadline else { return }
        if headDeadline <= context.eventLoop.now {
            logger.debug("closing a connection whose request head did not arrive in time")
            context.close(promise: nil)
        } else {
            arm(context, at: headDeadline)
        }
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard let event = event as? RequestHeadEvent else {
            context.triggerUserOutboundEvent(event, promise: promise)
            return
        }
        switch event {
        case .received:
            awaitingHead = false
            headDeadline = nil
        case .awaited:
            awaitingHead = true
        }
        promise?.succeed()
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        headDeadline = nil
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }
}

/// After the parser: reports parsed heads and finished responses to `HeadDeadlineHandler`, and
/// closes the connection after answering a `CONNECT`.
///
/// An answer to CONNECT is encoded without a body and without a length (NIO frames it as a
/// tunnel would be), so the client can only tell where it ends by the connection closing.
final class RequestHeadTracker: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private var closeAfterResponse = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = unwrapInboundIn(data) {
            if head.method == .connect { closeAfterResponse = true }
            context.triggerUserOutboundEvent(RequestHeadEvent.received, promise: nil)
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .end = unwrapOutboundIn(data) else {
            context.write(data, promise: promise)
            return
        }
        if closeAfterResponse {
            context.writeAndFlush(data, promise: promise)
            context.close(promise: nil)
            return
        }
        context.write(data, promise: promise)
        context.triggerUserOutboundEvent(RequestHeadEvent.awaited, promise: nil)
    }
}
