import Hummingbird
import Tessera

extension ClientInfo {
    /// Who sent `request`: the client address (through trusted proxies), user agent and request
    /// id. Device names and user agents are bounded in UTF-8 bytes: one character can be
    /// thousands of bytes of combining marks.
    init(_ request: Request, _ context: TesseraRequestContext, trustedProxies: TrustedProxies, device: String? = nil) {
        self.init(
            device: device.map { $0.truncatedToUTF8(200) },
            userAgent: request.headers[.userAgent].map { $0.truncatedToUTF8(512) },
            ipAddress: trustedProxies.clientAddress(peer: context.remoteAddress?.ipAddress, headers: request.headers),
            requestID: context.requestID
        )
    }
}
