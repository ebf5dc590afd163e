import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A throwaway PostgreSQL server for tests: a fresh cluster in its own temp directory, its own
/// port on 127.0.0.1, its unix socket in that directory, fsync off, and a password user
/// (SCRAM) so clients exercise real authentication. It only ever signals the postmaster it
/// started itself.
///
/// PostgreSQL refuses to run as root, so under root `initdb` and `postgres` run as the
/// `postgres` system user through `setpriv` (which execs, so the PID we hold is the postmaster's).
///
/// Prefer `withPostgresServer { server in ... }`, which stops the server and removes its
/// directory even when the body throws; `deinit` is the backstop (SIGKILL + cleanup).
public final class PostgresServerProcess: Sendable {
    public struct Options: Sendable {
        /// How long `start()` waits for the postmaster to report "ready".
        public var startupTimeout: Duration
        /// Extra `-c name=value` server settings.
        public var settings: [String: String]

        public init(startupTimeout: Duration = .seconds(30), settings: [String: String] = [:]) {
            self.startupTimeout = startupTimeout
            self.settings = settings
        }
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    public let options: Options
    public let port: Int
    public let host = "127.0.0.1"
    public let username = "tessera"
    public let password: String
    public let database = "postgres"
    /// Temp directory holding the cluster (`data/`), the unix socket and `postgres.log`.
    public let directory: URL
    private let binaries: URL
    /// The system user to run as when we are root, else nil.
    private let runAs: (name: String, uid: uid_t, gid: gid_t)?
    private let running = Mutex<Process?>(nil)
    private let initialised = Mutex(false)

    /// `postgres://tessera:<password>@127.0.0.1:<port>/postgres?sslmode=disable`.
    public var url: String {
        "postgres://\(self.username):\(self.password)@\(self.host):\(self.port)/\(self.database)?sslmode=disable"
    }

    private var dataDirectory: URL { self.directory.appendingPathComponent("data", isDirectory: true) }
    private var logFile: URL { self.directory.appendingPathComponent("postgres.log") }

    /// Prepares the directory and picks a port; does not run anything.
    public init(options: Options = Options()) throws {
        self.options = options
        self.binaries = try Self.findBinaries()
        if getuid() == 0 {
            guard let entry = getpwnam("postgres") else {
                throw Failure(description: "running as root and there is no `postgres` system user to run PostgreSQL as. Run scripts/test, which installs postgresql.")
            }
            self.runAs = ("postgres", entry.pointee.pw_uid, entry.pointee.pw_gid)
        } else {
            self.runAs = nil
        }
        self.port = try RedisServerProcess.freeLoopbackPort()
        // Hex only: the password goes into a URL unescaped.
        self.password = UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        self.directory = URL(fileURLWithPath: "/tmp", isDirectory: true)
            .appendingPathComponent("tessera-pg-\(self.port)-\(UUID().uuidString.prefix(8))", isDirectory: true)
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
        // Unix socket paths are limited to ~107 bytes, hence /tmp rather than a long TMPDIR.
        chmod(self.directory.path, 0o700)
        if let user = self.runAs, chown(self.directory.path, user.uid, user.gid) != 0 {
            throw Failure(description: "cannot chown \(self.directory.path) to postgres: errno \(errno)")
        }
    }

    /// Creates and starts a server.
    public static func start(options: Options = Options()) async throws -> PostgresServerProcess {
        var attempt = 1
        while true {
            let server = try PostgresServerProcess(options: options)
            do {
                try await server.start()
                return server
            } catch let failure as Failure where attempt < 4 && failure.description.contains("could not bind") {
                // The port was free when picked, but initdb takes seconds and another test's
                // server may have bound it meanwhile: start again on a new port.
                attempt += 1
                await server.kill()
                server.removeDirectory()
            } catch {
                await server.kill()
                server.removeDirectory()
                throw error
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

    /// Initialises the cluster on first use, starts the postmaster and waits until it is ready.
    public func start() async throws {
        if self.isRunning { return }
        if !self.initialised.withLock({ $0 }) {
            try await self.initdb()
            self.initialised.withLock { $0 = true }
        }
        // A stale pid file would make the readiness check look at the previous run.
        try? FileManager.default.removeItem(at: self.dataDirectory.appendingPathComponent("postmaster.pid"))

        var arguments = [
            "-D", self.dataDirectory.path,
            "-p", "\(self.port)",
            "-k", self.directory.path,
            "-c", "listen_addresses=127.0.0.1",
            // Throwaway data: durability only costs time.
            "-c", "fsync=off",
            "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off",
            "-c", "max_connections=100",
        ]
        for (name, value) in self.options.settings.sorted(by: { $0.key < $1.key }) {
            arguments += ["-c", "\(name)=\(value)"]
        }
        let process = try self.makeProcess("postgres", arguments)
        try runWithSignalsUnblocked(process)
        self.running.withLock { $0 = process }

        let clock = ContinuousClock()
        let deadline = clock.now + self.options.startupTimeout
        while clock.now < deadline {
            if !process.isRunning {
                throw Failure(description: "postgres exited during startup (status \(process.terminationStatus)): \(self.logTail())")
            }
            if self.postmasterReportsReady() { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw Failure(description: "postgres was not ready within \(self.options.startupTimeout): \(self.logTail())")
    }

    /// Fast shutdown (SIGINT: disconnects clients, checkpoints), bounded; SIGKILL if it hangs.
    /// SIGTERM would be a "smart" shutdown that waits for every client to disconnect.
    public func stop() async {
        await self.signal(SIGINT, grace: .seconds(10))
    }

    /// SIGKILL: a crash. The next `start()` runs crash recovery.
    public func kill() async {
        await self.signal(SIGKILL, grace: .seconds(5))
    }

    /// Stops and starts again on the same port and data directory.
    public func restart() async throws {
        await self.stop()
        try await self.start()
    }

    /// Last lines of the server log, to explain a failed start.
    public func logTail(lines: Int = 20) -> String {
        let log = (try? String(contentsOf: self.logFile, encoding: .utf8)) ?? ""
        return log.split(separator: "\n").suffix(lines).joined(separator: "\n")
    }

    // MARK: Helpers

    private func initdb() async throws {
        let passwordFile = self.directory.appendingPathComponent("pwfile")
        try (self.password + "\n").write(to: passwordFile, atomically: false, encoding: .utf8)
        if let user = self.runAs { _ = chown(passwordFile.path, user.uid, user.gid) }
        defer { try? FileManager.default.removeItem(at: passwordFile) }
        let process = try self.makeProcess(
            "initdb",
            [
                "-D", self.dataDirectory.path, "-U", self.username, "--pwfile", passwordFile.path,
                "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions",
            ]
        )
        try runWithSignalsUnblocked(process)
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(60)
        while process.isRunning {
            if clock.now > deadline {
                sendSignal(process.processIdentifier, SIGKILL)
                throw Failure(description: "initdb did not finish within 60s: \(self.logTail())")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        guard process.terminationStatus == 0 else {
            throw Failure(description: "initdb failed (status \(process.terminationStatus)): \(self.logTail())")
        }
    }

    /// A process running `binary` from the PostgreSQL bin directory, as the `postgres` user when
    /// we are root, with output appended to postgres.log.
    private func makeProcess(_ binary: String, _ arguments: [String]) throws -> Process {
        let executable = self.binaries.appendingPathComponent(binary)
        let process = Process()
        if let user = self.runAs {
            process.executableURL = URL(fileURLWithPath: try Self.findSetpriv())
            process.arguments =
                ["--reuid=\(user.uid)", "--regid=\(user.gid)", "--clear-groups", "--", executable.path] + arguments
        } else {
            process.executableURL = executable
            process.arguments = arguments
        }
        process.currentDirectoryURL = self.directory
        var environment = ProcessInfo.processInfo.environment
        environment["LC_ALL"] = "C"
        environment["LANG"] = "C"
        process.environment = environment
        if !FileManager.default.fileExists(atPath: self.logFile.path) {
            _ = FileManager.default.createFile(atPath: self.logFile.path, contents: nil)
        }
        let log = try FileHandle(forWritingTo: self.logFile)
        log.seekToEndOfFile()
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = log
        process.standardError = log
        return process
    }

    /// The postmaster writes "ready" into line 8 of postmaster.pid once it accepts connections
    /// (this is what `pg_ctl -w` waits for), which is stricter than "the port is open".
    private func postmasterReportsReady() -> Bool {
        guard let text = try? String(contentsOf: self.dataDirectory.appendingPathComponent("postmaster.pid"), encoding: .utf8) else {
            return false
        }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        return lines.count >= 8 && lines[7].trimmingCharacters(in: .whitespaces) == "ready"
    }

    private func signal(_ signal: Int32, grace: Duration) async {
        guard let process = self.running.withLock({ $0 }) else { return }
        await terminate(process, with: signal, grace: grace)
        self.running.withLock { if $0 === process { $0 = nil } }
    }

    private func removeDirectory() {
        try? FileManager.default.removeItem(at: self.directory)
    }


    /// The directory holding initdb and postgres: Debian's versioned directories first (newest
    /// first), then PATH (Homebrew, /usr/local/bin symlinks).
    static func findBinaries() throws -> URL {
        var candidates: [String] = []
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        for version in versions.sorted(by: { (Int($0) ?? 0) > (Int($1) ?? 0) }) {
            candidates.append("/usr/lib/postgresql/\(version)/bin")
        }
        candidates += (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        candidates += ["/usr/local/bin", "/opt/homebrew/bin"]
        for directory in candidates where !directory.isEmpty {
            let initdb = URL(fileURLWithPath: directory).appendingPathComponent("initdb")
            let postgres = URL(fileURLWithPath: directory).appendingPathComponent("postgres")
            guard FileManager.default.isExecutableFile(atPath: initdb.path),
                FileManager.default.isExecutableFile(atPath: postgres.path)
            else { continue }
            // initdb finds postgres next to its own resolved path, so use the real directory.
            return initdb.resolvingSymlinksInPath().deletingLastPathComponent()
        }
        throw Failure(
            description: "PostgreSQL server binaries (initdb, postgres) not found in /usr/lib/postgresql/*/bin or PATH. Run scripts/test, which installs them (apt-get install postgresql)."
        )
    }

    static func findSetpriv() throws -> String {
        for path in ["/usr/bin/setpriv", "/bin/setpriv", "/usr/sbin/setpriv"] where FileManager.default.isExecutableFile(atPath: path) {
            return path
        }
        throw Failure(description: "running as root needs setpriv (util-linux) to run PostgreSQL as the postgres user")
    }
}

/// Starts a server, runs `body`, and always stops it and deletes its directory.
public func withPostgresServer<T>(
    options: PostgresServerProcess.Options = PostgresServerProcess.Options(),
    _ body: (PostgresServerProcess) async throws -> T
) async throws -> T {
    let server = try await PostgresServerProcess.start(options: options)
    do {
        let result = try await body(server)
        await server.stop()
        return result
    } catch {
        await server.stop()
        throw error
    }
}

