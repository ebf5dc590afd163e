import Hummingbird
import HummingbirdAuth
import Tessera

/// A request context for apps that need nothing more than Tessera's identity.
public struct TesseraAuthRequestContext: AuthRequestContext, RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var identity: TesseraIdentity?

    public init(source: Source) {
        self.coreContext = .init(source: source)
        self.identity = nil
    }
}
