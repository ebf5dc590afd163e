import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A throwaway `redis-server` for tests: its own port on 127.0.0.1, its own temp directory,
/// no persistence unless asked, and it only ever signals the process it started itself.
///
/// Prefer `withRedisServer { server in ... }`, which stops the server and removes its
/// directory even when the body throws; `deinit` is the backstop (SIGKILL + cleanup).
public final class RedisServerProcess: Sendable {
    public struct Options: Sendable {
        /// Turns on AOF (`appendonly yes`, fsync always) so data survives `restart()`.
        public var appendOnly: Bool
        /// Sets `requirepass` (the password of the `default` user).
        public var requirePassword: String?
        /// Extra redis.conf lines, e.g. `user app on >secret ~* +@all` or
        /// `rename-command HELLO ""`.
        public var extraConfiguration: [String]
        /// How long `start()` waits for the server to answer PING.
        public var startupTimeout: Duration
        /// A port chosen by the caller (a cluster node also needs port + 10000 free); nil picks one.
        public var port: Int?
        /// Command-line arguments after the configuration file, e.g. `--sentinel`.
        public var arguments: [String]

        public init(
            appendOnly: Bool = false,
            requirePassword: String? = nil,
            extraConfiguration: [String] = [],
            startupTimeout: Duration = .seconds(30),
            port: Int? = nil,
            arguments: [String] = []
        ) {
            self.appendOnly = appendOnly
            self.requirePassword = requirePassword
            self.extraConfiguration = extraConfiguration
            self.startupTimeout = startupTimeout
            self.port = port
            self.arguments = arguments
        }
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    public let options: Options
    public let port: Int
    public let host = "127.0.0.1"
    /// Temp directory holding redis.conf, the log and any AOF/RDB files.
    public let directory: URL
    private let executable: URL
    private let running = Mutex<Process?>(nil)

    /// `redis://127.0.0.1:<port>`.
    public var url: String { "redis://\(self.host):\(self.port)" }

    /// Prepares the directory and config and picks a port; does not start anything.
    public init(options: Options = Options()) throws {
        self.options = options
        self.executable = try Self.findRedisServer()
        self.port = try options.port ?? Self.freeLoopbackPort()
        self.directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("tessera-redis-\(self.port)-\(UUID().uuidString.prefix(8))", isDirectory: true)
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
        var lines = [
            "port \(self.port)",
            "bind 127.0.0.1",
            "protected-mode yes",
            "daemonize no",
            "save \"\"",
            "dir \(self.directory.path)",
            "logfile \(self.directory.appendingPathComponent("redis.log").path)",
            "appendonly \(options.appendOnly ? "yes" : "no")",
        ]
        if options.appendOnly { lines.append("appendfsync always") }
        if let password = options.requirePassword { lines.append("requirepass \(password)") }
        lines += options.extraConfiguration
        try (lines.joined(separator: "\n") + "\n").write(
            to: self.directory.appendingPathComponent("redis.conf"), atomically: true, encoding: .utf8
        )
    }

    /// Creates and starts a server. A port it picked itself and lost to another process
    /// before the server bound it (tests start many servers in parallel) is picked again.
    public static func start(options: Options = Options()) async throws -> RedisServerProcess {
        var attempt = 0
        while true {
            attempt += 1
            let server = try RedisServerProcess(options: options)
            do {
                try await server.start()
                return server
            } catch {
                await server.kill()
                server.removeDirectory()
                let lostPort = options.port == nil && "\(error)".contains("Address already in use")
                guard lostPort, attempt < 3 else { throw error }
            }
        }
    }

    deinit {
        if let process = self.running.withLock({ $0 }), process.isRunning {
            sendSignal(process.processIdentifier, SIGKILL)
        }
        self.removeDirectory()
    }

    public var isRunning: Bool { self.running.withLock { $0?.isRunning ?? false } }

    /// Starts the server (again) on this port and directory and waits until it answers PING.
    public func start() async throws {
        if self.isRunning { return }
        let process = Process()
        process.executableURL = self.executable
        process.arguments = [self.directory.appendingPathComponent("redis.conf").path] + self.options.arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        // The spawned child inherits the calling thread's signal mask, and Swift concurrency's
        // worker threads block almost every signal: redis-server would then never see SIGTERM
        // and `stop()` could only end it with SIGKILL. Unblock around the spawn.
        try runWithSignalsUnblocked(process)
        self.running.withLock { $0 = process }

        let clock = ContinuousClock()
        let deadline = clock.now + self.options.startupTimeout
        // Attempts are counted so a failure tells a slow server from a starved test process.
        var attempts = 0
        while clock.now < deadline {
            if !process.isRunning {
                throw Failure(description: "redis-server exited during startup (status \(process.terminationStatus)): \(self.logTail())")
            }
            attempts += 1
            if Self.answersPing(port: self.port) { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw Failure(description: "redis-server did not answer PING within \(self.options.startupTimeout) (\(attempts) attempts): \(self.logTail())")
    }

    /// SIGTERM, then waits (bounded) for the process to exit; SIGKILL if it does not.
    public func stop() async {
        await self.signal(SIGTERM, grace: .seconds(5))
    }

    /// SIGKILL: a crash, with no chance to write anything to disk.
    public func kill() async {
        await self.signal(SIGKILL, grace: .seconds(5))
    }

    /// SIGSTOP: the server hangs with every connection open, as a stalled host would.
    public func pause() {
        if let process = self.running.withLock({ $0 }), process.isRunning { sendSignal(process.processIdentifier, SIGSTOP) }
    }

    /// SIGCONT after `pause()`: the server goes on with whatever was sent to it meanwhile.
    public func resume() {
        if let process = self.running.withLock({ $0 }), process.isRunning { sendSignal(process.processIdentifier, SIGCONT) }
    }

    /// Stops and starts again on the same port and directory (data persists only with AOF).
    public func restart() async throws {
        await self.stop()
        try await self.start()
    }

    private func signal(_ signal: Int32, grace: Duration) async {
        guard let process = self.running.withLock({ $0 }) else { return }
        // A paused server acts on SIGTERM only once it runs again.
        if signal != SIGKILL, process.isRunning { sendSignal(process.processIdentifier, SIGCONT) }
        await terminate(process, with: signal, grace: grace)
        self.running.withLock { if $0 === process { $0 = nil } }
    }

    private func removeDirectory() {
        try? FileManager.default.removeItem(at: self.directory)
    }

    /// Last lines of the server log, to explain a failed start.
    public func logTail(lines: Int = 20) -> String {
        let log = (try? String(contentsOf: self.directory.appendingPathComponent("redis.log"), encoding: .utf8)) ?? ""
        return log.split(separator: "\n").suffix(lines).joined(separator: "\n")
    }

    // MARK: Helpers


    static func findRedisServer() throws -> URL {
        var candidates = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        candidates += ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/opt/homebrew/bin"]
        for directory in candidates where !directory.isEmpty {
            let path = directory + "/redis-server"
            if FileManager.default.isExecutableFile(atPath: path) { return URL(fileURLWithPath: path) }
        }
        throw Failure(
            description: "redis-server not found in PATH, /usr/bin or /usr/sbin. Run scripts/test, which installs it (apt-get install redis-server)."
        )
    }

    /// A random loopback port that is free now; it is released at once, so two callers could
    /// in principle pick the same one, but not an outgoing connection's source port.
    public static func freeLoopbackPort() throws -> Int {
        // Ports below the kernel's ephemeral range: a port picked now and bound by the server
        // a few seconds later (initdb takes that long) cannot meanwhile become the source port
        // of one of the many outgoing connections the tests make.
        let ephemeralStart = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8))
            .flatMap { $0.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).first.flatMap { Int($0) } } ?? 32768
        let range = 10000..<max(10001, min(ephemeralStart, 65536))
        for _ in 0..<200 {
            let port = Int.random(in: range)
            if canBind(port: port) { return port }
        }
        throw Failure(description: "no free loopback port found in \(range)")
    }

    static func canBind(port: Int) -> Bool {
        withLoopbackSocket(port: port) { fd, address, length in bind(fd, address, length) == 0 } ?? false
    }

    /// A TCP socket and 127.0.0.1:`port` as a `sockaddr`, closed when `body` returns.
    static func withLoopbackSocket<T>(
        port: Int, _ body: (Int32, UnsafePointer<sockaddr>, socklen_t) -> T
    ) -> T? {
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }

    /// True once the server accepts a connection and answers PING (NOAUTH also counts: the
    /// server is up, it just wants a password). LOADING means not ready yet.
    static func answersPing(port: Int) -> Bool {
        withLoopbackSocket(port: port) { fd, address, length in
            var timeout = timeval(tv_sec: 1, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            guard connect(fd, address, length) == 0 else { return false }
            return pingConnected(fd)
        } ?? false
    }

    private static func pingConnected(_ fd: Int32) -> Bool {
        let ping: [UInt8] = Array("PING\r\n".utf8)
        guard send(fd, ping, ping.count, 0) == ping.count else { return false }
        var reply = [UInt8](repeating: 0, count: 256)
        let n = recv(fd, &reply, reply.count, 0)
        guard n > 0 else { return false }
        let text = String(decoding: reply[0..<n], as: UTF8.self)
        return text.hasPrefix("+PONG") || text.hasPrefix("-NOAUTH")
    }
}

/// Starts a server, runs `body`, and always stops it and deletes its directory.
public func withRedisServer<T>(
    options: RedisServerProcess.Options = RedisServerProcess.Options(),
    _ body: (RedisServerProcess) async throws -> T
) async throws -> T {
    let server = try await RedisServerProcess.start(options: options)
    do {
        let result = try await body(server)
        await server.stop()
        return result
    } catch {
        await server.stop()
        throw error
    }
}

