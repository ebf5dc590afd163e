import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Tessera
@testable import TesseraServer
import Testing

@Suite("HTTP: methods a path does not serve")
struct MethodNotAllowedTests {
    @Test func aKnownPathWithAnotherMethodAnswers405WithAllow() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let me = try await client.raw(.patch, "/v1/auth/me")
            #expect(me.status == .methodNotAllowed)
            #expect(me.code == "method_not_allowed")
            #expect(me.headers[.allow] == "GET, HEAD")
            #expect(me.headers[.contentType] == "application/problem+json")

            let credential = try await client.raw(.post, "/v1/auth/session/credentials/github")
            #expect(credential.status == .methodNotAllowed)
            #expect(credential.headers[.allow] == "DELETE, GET, HEAD, PUT")

            let sessions = try await client.raw(.get, "/v1/auth/sessions/abc")
            #expect(sessions.status == .methodNotAllowed)
            #expect(sessions.headers[.allow] == "DELETE")
        }
    }

    /// A literal segment wins over a capture beside it, as in the router: `keys/reseal` is its
    /// own route (POST), not `keys/{kid}` (DELETE).
    @Test func aLiteralRouteIsNotTakenForACaptureBesideIt() async throws {
        var tessera = try await TestTessera.make()
        tessera.options.adminKey = "admin-key-for-the-allow-test-0123"
        try await tessera.test { client in
            let reseal = try await client.raw(.get, "/v1/admin/keys/reseal")
            #expect(reseal.status == .methodNotAllowed)
            #expect(reseal.headers[.allow] == "POST")
            let key = try await client.raw(.get, "/v1/admin/keys/some-key-id")
            #expect(key.headers[.allow] == "DELETE")
        }
    }

    @Test func traceIsRefusedWithTheMethodsOfThePath() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let known = try await client.raw(.trace, "/v1/auth/login")
            #expect(known.status == .methodNotAllowed)
            #expect(known.headers[.allow] == "POST")

            let check = try await client.raw(.trace, "/v1/authz/check/anything")
            #expect(check.status == .methodNotAllowed)
            #expect(check.headers[.allow] == "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT")

            let unknown = try await client.raw(.trace, "/nowhere")
            #expect(unknown.status == .methodNotAllowed)
            #expect(unknown.headers[.allow] == "")
        }
    }

    /// HEAD answers wherever GET does, with the GET's status and headers and no body: what load
    /// balancers and uptime checks send. A path without GET still answers 405.
    @Test func headAnswersLikeGetWithoutABody() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            for path in ["/health/live", "/health/ready", "/health", "/.well-known/jwks.json", "/openapi.json"] {
                let get = try await client.raw(.get, path)
                let head = try await client.raw(.head, path)
                #expect(get.status == .ok && head.status == .ok, "\(path): GET \(get.status), HEAD \(head.status)")
                #expect(head.body.isEmpty, "\(path): HEAD carried a body")
                if path == "/health" {
                    // Its body carries the store's measured latency, which differs from one
                    // request to the next (and so does its length): HEAD still announces one.
                    #expect(head.headers[.contentLength].flatMap { Int($0) }.map { $0 > 0 } == true, "\(path)")
                } else {
                    #expect(head.headers[.contentLength] == String(get.body.count), "\(path)")
                }
                #expect(head.headers[.contentType] == get.headers[.contentType], "\(path)")
            }
            let me = try await client.raw(.head, "/v1/auth/me")
            #expect(me.status == .unauthorized)
            #expect(me.body.isEmpty)
            let login = try await client.raw(.head, "/v1/auth/login")
            #expect(login.status == .methodNotAllowed)
            #expect(login.headers[.allow] == "POST")
        }
    }

    @Test func unknownPathsStay404() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let reply = try await client.raw(.get, "/v1/auth/nothing-here")
            #expect(reply.status == .notFound)
            #expect(reply.code == "not_found")
            #expect(reply.headers[.allow] == nil)
            // The admin routes are off without a key: no route, so no 405 either.
            #expect(try await client.raw(.delete, "/v1/admin/stats").status == .notFound)
        }
    }

    @Test func matchingFollowsLiteralsAndCaptures() {
        let allowed = AllowedMethods([
            (RouterPath("v1/auth/sessions"), .get), (RouterPath("v1/auth/sessions/{id}"), .delete),
            (RouterPath("v1/auth/session/credentials/{name}"), .get), (RouterPath("v1/auth/session/credentials/{name}"), .put),
        ])
        #expect(allowed.methods(for: "/v1/auth/sessions") == [.get, .head])
        #expect(allowed.methods(for: "/v1/auth/sessions/") == [.get, .head])
        #expect(allowed.methods(for: "/v1/auth/sessions/x") == [.delete])
        #expect(allowed.methods(for: "/v1/auth/sessions/x/y") == nil)
        #expect(allowed.methods(for: "/v1/auth/session/credentials/a") == [.get, .put, .head])
        #expect(allowed.methods(for: "/v1/auth") == nil)
    }
}
