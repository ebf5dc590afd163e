import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Tessera

/// The answer to a refused or undecidable token, in Tessera's problem+json shape.
public struct TesseraAuthenticationProblem: HTTPResponseError {
    public let reason: TesseraVerificationError

    public init(_ reason: TesseraVerificationError) { self.reason = reason }

    public var status: HTTPResponse.Status { reason.authError == nil ? .serviceUnavailable : .unauthorized }

    public var code: String { reason.problem.code }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let problem = reason.problem
        var headers: HTTPFields = [.contentType: "application/problem+json", .cacheControl: "no-store"]
        // RFC 6750 §3 for refusals, as Tessera itself answers; a retry hint when undecided.
        if reason.authError != nil { headers[.wwwAuthenticate] = "Bearer error=\"invalid_token\"" } else { headers[.retryAfter] = "1" }
        let body = ProblemDocument(status: status.code, title: status.reasonPhrase, code: problem.code, detail: problem.detail)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body.bytes())))
    }
}
