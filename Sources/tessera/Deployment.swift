import ArgumentParser
import Foundation
import Logging
import Tessera
import TesseraApp

/// The deployment the `serve` flags describe, opened for one operation by `keys`, `sessions`,
/// `users` and `mfa`: the same stores and key files `serve` uses, nothing created.
struct Deployment {
    /// Exit statuses of the operations commands (ArgumentParser answers bad usage with 64).
    enum ExitStatus: Int32 {
        case failure = 1
        /// The named user, session or key does not exist.
        case notFound = 3
        /// The change was refused (the key is in use, a rotation is pending, values are still
        /// sealed under the key, the keys are ephemeral).
        case refused = 4
    }

    let configuration: ServerConfiguration
    let runtime: TesseraRuntime
    let logger: Logger

    static func open(_ options: ServerOptions) async -> Deployment {
        let environment = ProcessInfo.processInfo.environment
        var configuration: ServerConfiguration
        let level: Logger.Level
        do {
            var settings = Settings(environment: environment)
            configuration = try settings.configuration(options)
            // Operations print their result; logs (stderr) only when something is wrong.
            level = options.logLevel == nil && environment["TESSERA_LOG_LEVEL"] == nil ? .warning : try settings.logLevel(options.logLevel)
        } catch {
            fail(error, status: .failure)
        }
        configuration.createMissing = false
        LoggingSystem.bootstrap { label in
            LineLogHandler(label: label, level: level, format: .text)
        }
        let logger = Logger(label: "tessera")
        do {
            let runtime = try await TesseraRuntime.bootstrap(configuration, logger: logger)
            return Deployment(configuration: configuration, runtime: runtime, logger: logger)
        } catch {
            fail(error, status: .failure)
        }
    }

    /// Runs the operation with the stores' connections up; a failure ends the process with
    /// its message on stderr and the matching status.
    func run<Result: Sendable>(_ operation: @escaping @Sendable (AuthService) async throws -> Result) async -> Result {
        do {
            return try await runtime.perform(logger: logger, operation)
        } catch {
            Self.fail(error)
        }
    }

    /// The user of `--email`, or exit 3.
    func user(email: String) async -> User {
        await run { try await $0.adminUser(email: email) }
    }

    static func fail(_ error: any Error, status: ExitStatus? = nil) -> Never {
        let (message, derived): (String, ExitStatus) = switch error {
        case let error as AuthError:
            ("\(error.detail) (\(error.code))", [.userNotFound, .sessionNotFound].contains(error) ? .notFound : .failure)
        case let error as KeyRotationError:
            ("\(error.description) (\(error.code))", error.code == "key_not_found" ? .notFound : .refused)
        case let error as KeyFiles.Unavailable:
            ("\(error.description) (keys_ephemeral)", .refused)
        default:
            ("\(error)", .failure)
        }
        FileHandle.standardError.write(Data("tessera: error: \(message)\n".utf8))
        Foundation.exit((status ?? derived).rawValue)
    }
}

/// Prints rows as aligned columns, the header first.
func printTable(_ header: [String], _ rows: [[String]]) {
    let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
    for row in [header] + rows {
        let cells = row.enumerated().map { index, cell in
            index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
        }
        print(cells.joined(separator: "  "))
    }
}

func timestamp(_ date: Date?) -> String {
    date.map { Date(timeIntervalSince1970: $0.timeIntervalSince1970.rounded(.down)).formatted(.iso8601) } ?? "-"
}
