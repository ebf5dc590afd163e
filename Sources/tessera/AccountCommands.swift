import ArgumentParser
import Foundation
import Tessera
import TesseraApp

struct SessionsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sessions", abstract: "List and end a user's sessions.", subcommands: [List.self, Revoke.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The user's live sessions, oldest first.")
        @OptionGroup var options: ServerOptions
        @Option(help: "The user's email address.") var email: String

        func run() async throws {
            let deployment = await Deployment.open(options)
            let email = email
            let sessions = await deployment.run { service in
                try await service.adminSessions(userID: try await service.adminUser(email: email).id)
            }
            printTable(
                ["SESSION", "CREATED", "LAST USED", "EXPIRES", "DEVICE", "IP"],
                sessions.map {
                    [$0.id, timestamp($0.createdAt), timestamp($0.lastUsedAt), timestamp($0.expiresAt), $0.device ?? "-", $0.ipAddress ?? "-"]
                }
            )
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "End one session or all of them: refresh and access tokens stop working at once."
        )
        @OptionGroup var options: ServerOptions
        @Option(help: "The user's email address.") var email: String
        @Option(help: "The session id, as `sessions list` shows it.") var session: String?
        @Flag(help: "End every session of the user.") var all = false

        func validate() throws {
            guard (session != nil) != all else { throw ValidationError("give either --session ID or --all") }
        }

        func run() async throws {
            let deployment = await Deployment.open(options)
            let (email, session) = (email, session)
            if let session {
                await deployment.run { service in
                    try await service.adminRevokeSession(userID: try await service.adminUser(email: email).id, sessionID: session)
                }
                print("session \(session) ended")
            } else {
                let count = await deployment.run { service in
                    try await service.adminRevokeSessions(userID: try await service.adminUser(email: email).id)
                }
                print("\(count) session(s) ended")
            }
        }
    }
}

struct UsersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "users", abstract: "Show, lock, unlock and delete accounts.",
        subcommands: [Show.self, Lock.self, Unlock.self, Delete.self]
    )

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The account of an address.")
        @OptionGroup var options: ServerOptions
        @Option(help: "The user's email address.") var email: String

        func run() async throws {
            let deployment = await Deployment.open(options)
            let user = await deployment.user(email: email)
            print("id: \(user.id)\nemail: \(user.email)\nmfa: \(user.mfaEnabled ? "on" : "off")")
            print("created: \(timestamp(user.createdAt))\nlocked: \(user.lockedAt.map { "since \(timestamp($0))" } ?? "no")")
        }
    }

    struct Lock: AccountCommand {
        static let configuration = CommandConfiguration(abstract: "Refuse logins and end every session until unlocked.")
        @OptionGroup var options: ServerOptions
        @Option(help: "The user's email address.") var email: String

        static func act(_ service: AuthService, userID: String, email: String) async throws -> String {
            "\(email) locked; \(try await service.lockUser(userID: userID)) session(s) ended"
        }
    }

    struct Unlock: AccountCommand {
        static let configuration = CommandConfiguration(abstract: "Accept logins again.")
        @OptionGroup var options: ServerOptions
        @Option(help: "The user's email address.") var email: String

        static func act(_ service: AuthService, userID: String, email: String) async throws -> String {
            try await service.unlockUser(userID: userID) ? "\(email) unlocked" : "\(email) was not locked"
        }
    }

    struct Delete: AccountCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete the account: every session and access token ends at once, then the user is removed."
        )
        @OptionGroup var options: ServerOptions
        @Option(help: "The user's email address.") var email: String

        static func act(_ service: AuthService, userID: String, email: String) async throws -> String {
            "\(email) deleted; \(try await service.deleteUser(userID: userID)) session(s) ended"
        }
    }
}

struct MFACommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "mfa", abstract: "Second factor of an account.", subcommands: [Reset.self])

    struct Reset: AccountCommand {
        static let configuration = CommandConfiguration(
            abstract: "Turn MFA off for a user who lost every factor (secret and recovery codes deleted; the user is notified)."
        )
        @OptionGroup var options: ServerOptions
        @Option(help: "The user's email address.") var email: String

        static func act(_ service: AuthService, userID: String, email: String) async throws -> String {
            try await service.resetMFA(userID: userID) ? "mfa reset for \(email)" : "mfa was not on for \(email) (any pending enrolment cancelled)"
        }
    }
}

/// A command on one account, named by `--email`: looks the user up, acts, prints one line.
protocol AccountCommand: AsyncParsableCommand {
    var options: ServerOptions { get }
    var email: String { get }
    static func act(_ service: AuthService, userID: String, email: String) async throws -> String
}

extension AccountCommand {
    func run() async throws {
        let deployment = await Deployment.open(options)
        let email = email
        print(await deployment.run { service in try await Self.act(service, userID: try await service.adminUser(email: email).id, email: email) })
    }
}
