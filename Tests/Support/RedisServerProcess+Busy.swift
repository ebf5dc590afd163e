import Foundation

extension RedisServerProcess {
    /// Server options for `whileBusy`: a script counts as running too long after 100 ms, from
    /// when on the server answers every other command with `-BUSY`.
    public static let busyAfterOneTenthOfASecond = Options(extraConfiguration: ["lua-time-limit 100"])

    /// Runs `body` while the server is stuck in a Lua script that never returns: alive and
    /// connected, answering `-BUSY` to everything else. Returns only after `PING` has been
    /// seen answering `BUSY` (so `body` never races the script's start), and ends the script
    /// with `SCRIPT KILL` afterwards, waiting until the server answers `PONG` again.
    public func whileBusy<T>(_ body: () async throws -> T) async throws -> T {
        let port = String(self.port)
        let script = Task { try await runRedisCLI(["-p", port, "EVAL", "while true do end", "0"], timeout: .seconds(120)) }
        let end = {
            for _ in 0..<200 {
                _ = try? await runRedisCLI(["-p", port, "SCRIPT", "KILL"])
                if (try? await runRedisCLI(["-p", port, "PING"]))?.contains("PONG") == true { break }
                try? await Task.sleep(for: .milliseconds(50))
            }
            _ = try? await script.value
        }
        var busy = false
        for _ in 0..<300 where !busy {
            busy = (try await runRedisCLI(["-p", port, "PING"])).contains("BUSY")
            if !busy { try await Task.sleep(for: .milliseconds(50)) }
        }
        guard busy else {
            await end()
            throw Failure(description: "redis-server never answered BUSY to PING")
        }
        return try await withCleanup(end, body)
    }
}
