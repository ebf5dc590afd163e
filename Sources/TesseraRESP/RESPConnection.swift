import Logging
import NIOCore
import NIOPosix
import NIOSSL

/// One connection to Redis. Safe to share between tasks: commands from all of them are
/// multiplexed on the socket (one write per event-loop tick) and replies are matched in order.
///
/// Most code should use `RedisClient`, which pools these and reconnects; a bare connection is
/// for pub/sub-like uses or tests.
public final class RESPConnection: Sendable {
    public let channel: any Channel
    /// The protocol negotiated by the handshake (RESP2 when the server refused HELLO 3).
    public let protocolVersion: RedisConfiguration.ProtocolVersion
    public let commandTimeout: Duration
    let logger: Logger
    private let handler: NIOLoopBound<RESPChannelHandler>

    private init(
        channel: any Channel, handler: NIOLoopBound<RESPChannelHandler>, protocolVersion: RedisConfiguration.ProtocolVersion,
        commandTimeout: Duration, logger: Logger
    ) {
        self.channel = channel
        self.handler = handler
        self.protocolVersion = protocolVersion
        self.commandTimeout = commandTimeout
        self.logger = logger
    }

    /// Opens a connection and runs the handshake (HELLO/AUTH, SELECT).
    /// - Parameter pushHandler: receives RESP3 push messages (pub/sub, invalidations); called on
    ///   the connection's event loop, so it must not block.
    public static func connect(
        configuration: RedisConfiguration,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "TesseraRESP"),
        pushHandler: (@Sendable (RESPValue) -> Void)? = nil
    ) async throws(RedisError) -> RESPConnection {
        let sslContext = try makeSSLContext(configuration)
        return try await connect(
            configuration: configuration,
            sslContext: sslContext,
            eventLoopGroup: eventLoopGroup,
            logger: logger,
            pushHandler: pushHandler
        )
    }

    static func makeSSLContext(_ configuration: RedisConfiguration) throws(RedisError) -> NIOSSLContext? {
        guard let tls = configuration.tls else { return nil }
        var tlsConfiguration = TLSConfiguration.makeClientConfiguration()
        if let ca = tls.caFilePath {
            tlsConfiguration.trustRoots = .file(ca)
        }
        do {
            return try NIOSSLContext(configuration: tlsConfiguration)
        } catch {
            throw .invalidConfiguration("cannot set up TLS: \(error)")
        }
    }

    static func connect(
        configuration: RedisConfiguration,
        sslContext: NIOSSLContext?,
        eventLoopGroup: any EventLoopGroup,
        logger: Logger,
        pushHandler: (@Sendable (RESPValue) -> Void)?
    ) async throws(RedisError) -> RESPConnection {
        let limits = configuration.decoderLimits
        // SNI must not carry an IP address; NIOSSL then verifies against the peer address.
        let serverName = configuration.tls?.serverName ?? (isIPAddress(configuration.host) ? nil : configuration.host)
        let bootstrap = ClientBootstrap(group: eventLoopGroup)
            .connectTimeout(TimeAmount(configuration.connectTimeout))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let sslContext {
                        try sync.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: serverName))
                    }
                    try sync.addHandler(ByteToMessageHandler(RESPValueDecoder(limits: limits)))
                    try sync.addHandler(RESPChannelHandler(pushHandler: pushHandler, allocator: channel.allocator))
                }
            }
        let channel: any Channel
        let handler: NIOLoopBound<RESPChannelHandler>
        do {
            channel = try await bootstrap.connect(host: configuration.host, port: configuration.port).get()
            handler = try await channel.eventLoop.submit {
                NIOLoopBound(try channel.pipeline.syncOperations.handler(type: RESPChannelHandler.self), eventLoop: channel.eventLoop)
            }.get()
        } catch {
            throw .connectionFailed("\(configuration.host):\(configuration.port): \(error)")
        }
        do {
            let version = try await handshake(channel: channel, handler: handler, configuration: configuration)
            logger.debug("Redis connection ready", metadata: ["redis": "\(configuration)", "resp": "\(version.rawValue)"])
            return RESPConnection(
                channel: channel, handler: handler, protocolVersion: version, commandTimeout: configuration.commandTimeout, logger: logger
            )
        } catch {
            try? await channel.close()
            throw error
        }
    }

    private static func handshake(
        channel: any Channel, handler: NIOLoopBound<RESPChannelHandler>, configuration: RedisConfiguration
    ) async throws(RedisError) -> RedisConfiguration.ProtocolVersion {
        let timeout = configuration.connectTimeout
        func command(_ args: [RESPArgument]) async throws(RedisError) -> RESPValue {
            do {
                return try await Self.send([args], channel: channel, handler: handler, timeout: timeout, onCancel: .close).values[0]
            } catch let error as RedisError {
                throw error
            } catch {
                throw .connectionFailed("connection lost during the handshake")
            }
        }
        var version = RedisConfiguration.ProtocolVersion.resp2
        if configuration.protocolVersion == .resp3 {
            var hello: [RESPArgument] = ["HELLO", "3"]
            if let password = configuration.password {
                hello += ["AUTH", RESPArgument(configuration.username ?? "default"), RESPArgument(password)]
            }
            if let name = configuration.clientName {
                hello += ["SETNAME", RESPArgument(name)]
            }
            let reply = try await command(hello)
            switch reply.error {
            case nil:
                version = .resp3
            case .authentication(let code, let message)?:
                throw .authentication(code: code, message: message)
            case .err?, .server(code: "NOPROTO", _)?:
                // Pre-6 servers (or HELLO renamed away): carry on in RESP2.
                version = .resp2
            case let error?:
                throw error
            }
        }
        if version == .resp2 {
            if let password = configuration.password {
                var auth: [RESPArgument] = ["AUTH"]
                if let user = configuration.username { auth.append(RESPArgument(user)) }
                auth.append(RESPArgument(password))
                if let error = try await command(auth).error {
                    throw .authentication(code: error.serverCode ?? "ERR", message: "\(error)")
                }
            }
            if let name = configuration.clientName {
                try await command(["CLIENT", "SETNAME", RESPArgument(name)]).get()
            }
        }
        if configuration.database != 0 {
            try await command(["SELECT", RESPArgument(configuration.database)]).get()
        }
        if configuration.requiresPrimary {
            let role = try await command(["ROLE"]).get().array?.first?.string ?? "unknown"
            guard role == "master" else { throw .readOnly(message: "the node is not a primary (ROLE \(role))") }
        }
        return version
    }

    /// Whether the socket is still open. A closed connection never reopens.
    public var isActive: Bool { self.channel.isActive }

    /// Sends one command and waits for its reply. An error reply is thrown as `RedisError`
    /// and leaves the connection usable.
    /// - Parameter timeout: overrides the configured command timeout (e.g. for blocking commands).
    ///
    /// A cancelled caller stops waiting at once and the connection is closed: on a connection
    /// leased for dependent or blocking commands (`WAIT`, `BLPOP`), a command still running
    /// would hold up whatever is sent next. The pool opens a fresh one.
    @discardableResult
    public func send(_ command: [RESPArgument], timeout: Duration? = nil) async throws(RedisError) -> RESPValue {
        do {
            return try await self.sendUnlessClosed(command, timeout: timeout, onCancel: .close)
        } catch {
            throw Self.callerError(error)
        }
    }

    /// Sends all commands in one write and returns their replies in order. Error replies are
    /// returned as `.simpleError`/`.bulkError` values (use `get()` to throw them) so that one
    /// failed command does not hide the others' results. One timeout covers the whole batch.
    public func pipeline(_ commands: [[RESPArgument]], timeout: Duration? = nil) async throws(RedisError) -> [RESPValue] {
        do {
            return try await self.pipelineUnlessClosed(commands, timeout: timeout, onCancel: .close)
        } catch {
            throw Self.callerError(error)
        }
    }

    /// Writes a command whose answers arrive as push messages (SUBSCRIBE and friends in
    /// RESP3): nothing is queued for a reply. Returns once the bytes are written.
    public func sendPushCommand(_ command: [RESPArgument]) async throws(RedisError) {
        do {
            try await self.channel.writeAndFlush(RESPCommandEncoder.encode(command, allocator: self.channel.allocator)).get()
        } catch {
            throw .connectionClosed
        }
    }

    /// What a caller sees: a command that never left the client, or any failure that is not
    /// already a `RedisError`, is a closed connection.
    private static func callerError(_ error: any Error) -> RedisError {
        (error as? RedisError) ?? .connectionClosed
    }

    /// What a cancelled caller does to the connection.
    enum CancellationPolicy {
        /// Close it: the connection is leased to the caller, and its next command must not wait
        /// behind the one abandoned.
        case close
        /// Leave it: the connection is shared, the reply is matched and dropped when it comes.
        case abandon
    }

    /// Like `send`, but throws `RESPNotSentError` when the command certainly never left.
    func sendUnlessClosed(_ command: [RESPArgument], timeout: Duration?, onCancel: CancellationPolicy) async throws -> RESPValue {
        let reply = try await Self.send(
            [command], channel: self.channel, handler: self.handler, timeout: timeout ?? self.commandTimeout, onCancel: onCancel
        )
        guard case .one(let value) = reply else { return try reply.values[0].get() }
        return try value.get()
    }

    func pipelineUnlessClosed(_ commands: [[RESPArgument]], timeout: Duration?, onCancel: CancellationPolicy) async throws -> [RESPValue] {
        guard !commands.isEmpty else { return [] }
        return try await Self.send(
            commands, channel: self.channel, handler: self.handler, timeout: timeout ?? self.commandTimeout, onCancel: onCancel
        ).values
    }

    private static func send(
        _ commands: [[RESPArgument]], channel: any Channel, handler: NIOLoopBound<RESPChannelHandler>, timeout: Duration,
        onCancel: CancellationPolicy
    ) async throws -> RESPReply {
        if Task.isCancelled { throw RedisError.cancelled }
        let slot = RESPReplySlot()
        let timeout = TimeAmount(timeout)
        let eventLoop = channel.eventLoop
        do {
            return try await slot.wait {
                if eventLoop.inEventLoop {
                    handler.value.submit(commands, slot: slot, timeout: timeout)
                } else {
                    eventLoop.execute { handler.value.submit(commands, slot: slot, timeout: timeout) }
                }
            } onCancel: {
                if case .close = onCancel { channel.close(promise: nil) }
            }
        } catch {
            if Task.isCancelled { throw RedisError.cancelled }
            throw error
        }
    }

    /// Closes the socket; commands still waiting fail with `.connectionClosed`.
    public func close() async {
        try? await self.channel.close()
    }
}

func isIPAddress(_ host: String) -> Bool {
    if host.contains(":") { return true }
    let parts = host.split(separator: ".", omittingEmptySubsequences: false)
    return parts.count == 4 && parts.allSatisfy { UInt8($0) != nil }
}
