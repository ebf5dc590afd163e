import Tessera
import TesseraRESP

extension StoreError {
    /// How a failed Redis command reaches the token, rate-limit and cache code: an outage only
    /// when Redis is unreachable, or when the deployment no longer serves the data (a topology
    /// error the cluster or Sentinel client could not resolve within its retries).
    public init(redis error: any Error, backend: String, operation: String) {
        guard let redisError = error as? RedisError else {
            self.init(backend: backend, message: "\(error)", kind: .unavailable, operation: operation)
            return
        }
        let kind: Kind =
            switch redisError.failureClass {
            case .unavailable, .topology: .unavailable
            case .overloaded: .overloaded
            case .server: .failed
            }
        self.init(backend: backend, message: "\(redisError)", kind: kind, operation: operation)
    }

    /// The name a command is logged by: its first word, or the script's name for EVALSHA.
    static func commandName(of command: [RESPArgument]) -> String {
        command.first.map { $0.description.uppercased() } ?? "?"
    }

    static func commandName(of commands: [[RESPArgument]]) -> String {
        var names: [String] = []
        for command in commands {
            let name = commandName(of: command)
            if !names.contains(name) { names.append(name) }
        }
        return names.joined(separator: "+")
    }

    static func commandName(of script: RedisScript) -> String { "EVALSHA \(script.name)" }
}
