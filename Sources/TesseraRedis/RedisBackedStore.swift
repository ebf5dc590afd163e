import Foundation
import Tessera
import TesseraRESP

/// What every Redis-backed store shares: a client and the mapping of its failures to
/// `StoreError` (see `StoreError.init(redis:backend:operation:)`), so that an unreachable Redis
/// is never mistaken for "absent", nor a busy or failing one for an outage.
protocol RedisBackedStore: Sendable {
    var client: any RedisCommandExecutor { get }
    var backendName: String { get }
}

extension RedisBackedStore {
    @discardableResult
    func run(_ script: RedisScript, keys: [String], _ arguments: [RESPArgument]) async throws -> RESPValue {
        do {
            return try await client.evalScript(script, keys: keys.map { RESPArgument($0) }, arguments: arguments)
        } catch {
            throw StoreError(redis: error, backend: backendName, operation: StoreError.commandName(of: script))
        }
    }

    @discardableResult
    func send(_ command: [RESPArgument]) async throws -> RESPValue {
        do {
            return try await client.send(command, timeout: nil)
        } catch {
            throw StoreError(redis: error, backend: backendName, operation: StoreError.commandName(of: command))
        }
    }

    func pipeline(_ commands: [[RESPArgument]]) async throws -> [RESPValue] {
        do {
            return try await client.pipeline(commands, timeout: nil)
        } catch {
            throw StoreError(redis: error, backend: backendName, operation: StoreError.commandName(of: commands))
        }
    }

    func malformed(_ operation: String) -> StoreError {
        StoreError(backend: backendName, message: "unexpected reply to \(operation)", kind: .failed, operation: operation)
    }
}

/// Escapes the glob characters of a literal for SCAN's MATCH.
func globEscaped(_ literal: String) -> String {
    var escaped = ""
    for character in literal {
        if "*?[]\\".contains(character) { escaped.append("\\") }
        escaped.append(character)
    }
    return escaped
}
