import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A throwaway Debian `nginx` for tests: its own loopback port, prefix, config, pid file, logs
/// and temp directories in a fresh temp directory (nothing under /etc or /var), in the
/// foreground, ended by PID.
public final class NginxProcess: Sendable {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    public let port: Int
    public let directory: URL
    private let process: Process

    private init(port: Int, directory: URL, process: Process) {
        self.port = port
        self.directory = directory
        self.process = process
    }

    /// Starts nginx with `httpBlock` (the contents of its `http { }` block, whose server
    /// listens on `port`) and waits until the port accepts connections.
    public static func start(port: Int, httpBlock: String, timeout: Duration = .seconds(30)) async throws -> NginxProcess {
        let executable = try findNginx()
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("tessera-nginx-\(port)-\(UUID().uuidString.prefix(8))", isDirectory: true)
        for name in ["", "logs", "client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            try FileManager.default.createDirectory(at: directory.appendingPathComponent(name), withIntermediateDirectories: true)
        }
        let path = directory.path
        // One process (no master/worker split, so no switch to an unprivileged user that
        // could not read these directories), in the foreground.
        let configuration = """
            daemon off;
            master_process off;
            worker_processes 1;
            pid \(path)/nginx.pid;
            error_log \(path)/logs/error.log info;
            events { worker_connections 128; }
            http {
                access_log \(path)/logs/access.log;
                client_body_temp_path \(path)/client_body;
                proxy_temp_path \(path)/proxy;
                fastcgi_temp_path \(path)/fastcgi;
                uwsgi_temp_path \(path)/uwsgi;
                scgi_temp_path \(path)/scgi;
            \(httpBlock)
            }

            """
        let file = directory.appendingPathComponent("nginx.conf")
        try configuration.write(to: file, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = executable
        // -e: the error log before the configuration is read (else /var/log/nginx).
        process.arguments = ["-p", path + "/", "-c", file.path, "-e", "\(path)/logs/error.log"]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try runWithSignalsUnblocked(process)
        let server = NginxProcess(port: port, directory: directory, process: process)
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if !process.isRunning {
                throw Failure(description: "nginx exited during startup (status \(process.terminationStatus)): \(server.errorLog)")
            }
            if acceptsConnections(port: port) { return server }
            try await Task.sleep(for: .milliseconds(20))
        }
        await server.stop()
        throw Failure(description: "nginx did not listen on \(port) within \(timeout): \(server.errorLog)")
    }

    public var errorLog: String {
        (try? String(contentsOf: directory.appendingPathComponent("logs/error.log"), encoding: .utf8)) ?? ""
    }

    /// SIGQUIT (graceful shutdown), SIGKILL after 10 s; then the directory goes.
    public func stop() async {
        await terminate(process, with: SIGQUIT, grace: .seconds(10))
        try? FileManager.default.removeItem(at: directory)
    }

    deinit {
        if process.isRunning { sendSignal(process.processIdentifier, SIGKILL) }
    }

    static func findNginx() throws -> URL {
        var candidates = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        candidates += ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin", "/opt/homebrew/bin"]
        for directory in candidates where !directory.isEmpty {
            let path = directory + "/nginx"
            if FileManager.default.isExecutableFile(atPath: path) { return URL(fileURLWithPath: path) }
        }
        throw Failure(description: "nginx not found in PATH or /usr/sbin. Run scripts/test, which installs it (apt-get install nginx).")
    }

    static func acceptsConnections(port: Int) -> Bool {
        RedisServerProcess.withLoopbackSocket(port: port) { fd, address, length in connect(fd, address, length) == 0 } ?? false
    }
}
