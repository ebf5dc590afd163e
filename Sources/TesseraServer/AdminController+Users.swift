import Foundation
import Hummingbird
import Tessera

/// Accounts and their sessions, for operators: the same operations as `tessera users|sessions`.
extension AdminController {
    func addUserRoutes(to group: RouterGroup<TesseraRequestContext>) {
        group.get("users") { request, _ in
            try authorize(request)
            guard let email = request.uri.queryParameters["email"].map(String.init), !email.isEmpty else {
                throw APIError.invalidRequest("give the user's address as ?email=")
            }
            return try JSONBody.response(AdminUserResponse(try await service.adminUser(email: email)))
        }
        group.get("users/{id}") { request, context in
            try authorize(request)
            return try JSONBody.response(AdminUserResponse(try await service.adminUser(id: try context.parameters.require("id"))))
        }
        group.delete("users/{id}") { request, context in
            try authorize(request)
            let ended = try await service.deleteUser(userID: try context.parameters.require("id"), client: ClientInfo(request, context, trustedProxies: trustedProxies))
            return try JSONBody.response(AdminOutcome(status: "deleted", sessionsEnded: ended))
        }
        group.post("users/{id}/lock") { request, context in
            try authorize(request)
            let ended = try await service.lockUser(userID: try context.parameters.require("id"), client: ClientInfo(request, context, trustedProxies: trustedProxies))
            return try JSONBody.response(AdminOutcome(status: "locked", sessionsEnded: ended))
        }
        group.post("users/{id}/unlock") { request, context in
            try authorize(request)
            let wasLocked = try await service.unlockUser(userID: try context.parameters.require("id"), client: ClientInfo(request, context, trustedProxies: trustedProxies))
            return try JSONBody.response(AdminOutcome(status: "unlocked", wasLocked: wasLocked))
        }
        group.get("users/{id}/sessions") { request, context in
            try authorize(request)
            let sessions = try await service.adminSessions(userID: try context.parameters.require("id"))
            return try JSONBody.response(SessionListResponse(sessions: sessions.map { SessionResponse($0, current: nil) }))
        }
        group.delete("users/{id}/sessions") { request, context in
            try authorize(request)
            let ended = try await service.adminRevokeSessions(userID: try context.parameters.require("id"), client: ClientInfo(request, context, trustedProxies: trustedProxies))
            return try JSONBody.response(AdminOutcome(status: "ended", sessionsEnded: ended))
        }
        group.delete("users/{id}/sessions/{sid}") { request, context in
            try authorize(request)
            try await service.adminRevokeSession(
                userID: try context.parameters.require("id"), sessionID: try context.parameters.require("sid"), client: ClientInfo(request, context, trustedProxies: trustedProxies)
            )
            return Response(status: .noContent)
        }
    }
}

/// A user as operators see it: what `/me` shows, plus the lock.
struct AdminUserResponse: Encodable {
    var user: UserResponse
    var lockedAt: String?

    init(_ user: User) {
        self.user = UserResponse(user)
        lockedAt = user.lockedAt.map(Timestamp.string)
    }

    enum CodingKeys: String, CodingKey {
        case locked
        case lockedAt = "locked_at"
    }

    func encode(to encoder: any Encoder) throws {
        try user.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(lockedAt != nil, forKey: .locked)
        try container.encode(lockedAt, forKey: .lockedAt)
    }
}

/// What a state-changing admin call did.
struct AdminOutcome: Encodable {
    var status: String
    var sessionsEnded: Int?
    var wasLocked: Bool?

    enum CodingKeys: String, CodingKey {
        case status
        case sessionsEnded = "sessions_ended"
        case wasLocked = "was_locked"
    }
}
