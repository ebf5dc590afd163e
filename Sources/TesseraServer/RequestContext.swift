import Hummingbird
import NIOCore

/// Per-request context: Hummingbird's core storage plus the peer address for session records.
public struct TesseraRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?
    /// The request's `X-Request-Id` (accepted or made by `RequestIDMiddleware`); nil outside the router.
    public var requestID: String?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
    }

    /// Bodies are collected explicitly with a 64 KiB cap; this is the outer bound.
    public var maxUploadSize: Int { JSONBody.maxSize }
}
