import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import Tessera

/// An RFC 9457 problem detail with Tessera's stable `code`.
public struct APIError: Error, Sendable {
    public var status: HTTPResponse.Status
    public var code: String
    public var detail: String
    public var headers: HTTPFields = [:]

    public init(_ status: HTTPResponse.Status, code: String, detail: String, headers: HTTPFields = [:]) {
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers
    }

    public static func invalidRequest(_ detail: String) -> APIError {
        APIError(.unprocessableContent, code: "invalid_request", detail: detail)
    }

    init(_ error: AuthError) {
        switch error {
        case .invalidRequest(let detail):
            self = .invalidRequest(detail)
        case .emailTaken:
            self.init(.conflict, code: error.code, detail: error.detail)
        case .invalidToken, .tokenExpired, .tokenRevoked:
            // RFC 6750 §3: tell Bearer clients why.
            self.init(.unauthorized, code: error.code, detail: error.detail, headers: [.wwwAuthenticate: "Bearer error=\"invalid_token\""])
        case .invalidCredentials, .invalidRefreshToken, .refreshTokenReused, .invalidMFAToken, .invalidMFACode:
            self.init(.unauthorized, code: error.code, detail: error.detail)
        case .sessionNotFound, .credentialNotFound, .userNotFound:
            self.init(.notFound, code: error.code, detail: error.detail)
        case .accountDisabled:
            self.init(.forbidden, code: error.code, detail: error.detail)
        case .invalidResetToken:
            self.init(.badRequest, code: error.code, detail: error.detail)
        case .mfaNotEnrolled, .mfaAlreadyEnabled, .credentialLimitReached, .upstreamRefreshFailed:
            self.init(.conflict, code: error.code, detail: error.detail)
        case .upstreamUnavailable:
            self.init(.badGateway, code: error.code, detail: error.detail)
        case .rateLimited(let seconds), .accountLocked(let seconds):
            self.init(.tooManyRequests, code: error.code, detail: error.detail, headers: [.retryAfter: String(seconds)])
        }
    }

    init(_ error: KeyRotationError) {
        switch error {
        case .keyNotFound: self.init(.notFound, code: error.code, detail: error.description)
        case .keyInUse, .rotationPending, .keyStillSealing: self.init(.conflict, code: error.code, detail: error.description)
        }
    }

    func response() -> Response {
        let data = ProblemDocument(status: status.code, title: status.reasonPhrase, code: code, detail: detail).bytes()
        var headers = headers
        headers[.contentType] = "application/problem+json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// Turns every failure into problem details, so clients never see an empty 500 or a dropped
/// connection, and nothing internal leaks into a response.
struct ProblemMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            return Self.problem(for: error, logger: context.logger).response()
        }
    }

    static func problem(for error: any Error, logger: Logger) -> APIError {
        switch error {
        case let error as APIError:
            return error
        case let error as AuthError:
            return APIError(error)
        case let error as KeyRotationError:
            return APIError(error)
        case let error as KeyFiles.Unavailable:
            return APIError(.conflict, code: "keys_ephemeral", detail: error.description)
        case let error as StoreError:
            return storeProblem(error, logger: logger)
        case is PasswordHasher.Overloaded:
            // Every hashing slot is taken: shed load now rather than queue logins for seconds.
            return APIError(
                .serviceUnavailable, code: "overloaded", detail: "Too many password checks are in progress; retry shortly.",
                headers: [.retryAfter: "1"]
            )
        case is HTTPParserError:
            // A body cut short or malformed framing: the client's fault, and common enough
            // (a dropped upload) that it is no error of ours to log loudly.
            logger.debug("request body could not be parsed", metadata: ["error": "\(error)"])
            return APIError(.badRequest, code: "malformed_request", detail: "The request could not be parsed.")
        case is NIOTooManyBytesError:
            return APIError(.contentTooLarge, code: "payload_too_large", detail: "The request body exceeds \(JSONBody.maxSize) bytes.")
        case let error as HTTPError:
            switch error.status {
            case .notFound:
                return APIError(.notFound, code: "not_found", detail: "No such endpoint.")
            case .methodNotAllowed:
                return APIError(.methodNotAllowed, code: "method_not_allowed", detail: "This endpoint does not accept that method.")
            case .contentTooLarge:
                return APIError(.contentTooLarge, code: "payload_too_large", detail: "The request body exceeds \(JSONBody.maxSize) bytes.")
            default:
                return APIError(error.status, code: error.status.code >= 500 ? "internal_error" : "bad_request", detail: error.status.reasonPhrase)
            }
        default:
            logger.error("unhandled error", metadata: ["error": "\(String(reflecting: type(of: error)))"])
            return APIError(.internalServerError, code: "internal_error", detail: "An internal error occurred.")
        }
    }
}

extension ProblemMiddleware {
    /// An unreachable store and a busy one both answer 503 (a busy one with `Retry-After`, as
    /// the client should simply retry); a store that answered with an error is a fault of ours:
    /// 500, logged with the failed operation's name (never its arguments).
    static func storeProblem(_ error: StoreError, logger: Logger) -> APIError {
        var metadata: Logger.Metadata = ["store": "\(error.backend)", "error": "\(error.message)"]
        if let operation = error.operation { metadata["operation"] = "\(operation)" }
        switch error.kind {
        case .unavailable:
            logger.error("token store unavailable", metadata: metadata)
            return APIError(.serviceUnavailable, code: "store_unavailable", detail: "The token store is unavailable; try again shortly.")
        case .overloaded:
            logger.warning("token store overloaded", metadata: metadata)
            return APIError(
                .serviceUnavailable, code: "store_unavailable", detail: "The token store is busy; retry shortly.",
                headers: [.retryAfter: "1"]
            )
        case .failed:
            logger.error("token store operation failed", metadata: metadata)
            return APIError(.internalServerError, code: "internal_error", detail: "An internal error occurred.")
        }
    }
}
