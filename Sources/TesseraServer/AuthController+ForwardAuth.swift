import HTTPTypes
import Hummingbird
import Logging
import Tessera

// Forward-auth for gateways (nginx `auth_request`, Traefik `forwardAuth`, Envoy `ext_authz`).
// docs/GATEWAYS.md shows the configurations; docs/API.md is the contract.
extension AuthController {
    static let forwardAuthPath = "/v1/authz/check"

    /// `/v1/authz/check` and everything below it (Envoy prepends its path prefix to the
    /// original path), whatever the method.
    static func isForwardAuth(_ path: String) -> Bool {
        path == forwardAuthPath || path.hasPrefix(forwardAuthPath + "/")
    }

    /// Authenticates the request exactly as `/v1/auth/me` does. 200 with the identity in
    /// headers; 401 for a missing, bad, expired or revoked token; 503 whenever Tessera cannot
    /// decide, so that a gateway fails closed.
    func forwardAuth(_ request: Request, logger: Logger) async -> Response {
        do {
            let claims = try await authenticate(request)
            let user = try await service.currentUser(claims)
            return Response(
                status: .ok,
                headers: [
                    .tesseraUserID: user.id, .tesseraSessionID: claims.sid, .tesseraEmail: user.email,
                    .tesseraMFA: user.mfaEnabled ? "true" : "false", .cacheControl: "no-store",
                ]
            )
        } catch let error as AuthError where APIError(error).status == .unauthorized {
            return APIError(error).response()
        } catch let error as APIError where error.code == "csrf_failed" {
            // A cookie-authenticated unsafe request from a page of another origin: refuse it.
            return error.response()
        } catch let error as StoreError {
            return ProblemMiddleware<TesseraRequestContext>.problem(for: error, logger: logger).response()
        } catch {
            logger.error("forward-auth could not decide", metadata: ["error": "\(String(reflecting: type(of: error)))"])
            return APIError(.serviceUnavailable, code: "authz_unavailable", detail: "Tessera cannot decide right now; refuse the request.")
                .response()
        }
    }
}

extension HTTPField.Name {
    static let tesseraUserID = Self("X-Tessera-User-Id")!
    static let tesseraSessionID = Self("X-Tessera-Session-Id")!
    static let tesseraEmail = Self("X-Tessera-Email")!
    static let tesseraMFA = Self("X-Tessera-MFA")!
}
