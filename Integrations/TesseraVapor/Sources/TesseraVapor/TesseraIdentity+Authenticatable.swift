import Tessera
import Vapor

/// Lets routes read the identity with `request.auth.get(TesseraIdentity.self)` / `require`.
extension TesseraIdentity: @retroactive Authenticatable {}
