import Foundation
import HTTPTypes
import HummingbirdTesting
import Synchronization
import TesseraTestSupport
import Testing

/// A real `tessera` process on loopback, started by the test and ended by PID.
final class TesseraProcess: Sendable {
    let process: Process
    let port: Int
    private let output: Output

    final class Output: Sendable {
        let text = Mutex("")
        /// The pipe reached end of file: the process and its children closed their output.
        let ended = Mutex(false)
        func append(_ data: Data) { text.withLock { $0 += String(decoding: data, as: UTF8.self) } }
        var value: String { text.withLock { $0 } }
        var isEnded: Bool { ended.withLock { $0 } }
    }

    /// The binary `swift build` put beside the test bundle (scripts/test builds it first).
    static var binary: URL {
        if let path = ProcessInfo.processInfo.environment["TESSERA_BINARY"] { return URL(fileURLWithPath: path) }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent(".build/debug/tessera")
    }

    private init(process: Process, port: Int, output: Output) {
        self.process = process
        self.port = port
        self.output = output
    }

    var log: String { output.value }

    /// Starts `tessera serve --port 0 …` and waits for its "listening" line.
    static func start(
        _ arguments: [String], environment: [String: String] = [:], directory: URL? = nil, timeout: Duration = .seconds(60)
    ) async throws -> TesseraProcess {
        let (process, output) = try launch(["serve", "--port", "0", "--bcrypt-cost", "4"] + arguments, environment: environment, directory: directory)
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let port = listeningPort(in: output.value) {
                return TesseraProcess(process: process, port: port, output: output)
            }
            if !process.isRunning {
                throw ProcessFailure("tessera exited with \(process.terminationStatus) before listening:\n\(output.value)")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        kill(process.processIdentifier, SIGKILL)
        throw ProcessFailure("tessera did not start listening within \(timeout):\n\(output.value)")
    }

    /// Runs `tessera ARGS` to completion (for start-up failures); returns exit status and output.
    static func run(_ arguments: [String], environment: [String: String] = [:], timeout: Duration = .seconds(60)) async throws -> (Int32, String) {
        let (process, output) = try launch(arguments, environment: environment)
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now > deadline {
                kill(process.processIdentifier, SIGKILL)
                throw ProcessFailure("tessera \(arguments) still running after \(timeout):\n\(output.value)")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        // The exit can be seen before the last output is read: wait for the pipe's end.
        let drained = ContinuousClock.now + .seconds(10)
        while !output.isEnded, ContinuousClock.now < drained { try await Task.sleep(for: .milliseconds(10)) }
        return (process.terminationStatus, output.value)
    }

    /// Starts another executable of this package (an example app) that prints the same
    /// "listening on http://127.0.0.1:<port>" line, and waits for it.
    static func startApp(_ name: String, environment: [String: String], timeout: Duration = .seconds(60)) async throws -> TesseraProcess {
        let executable = binary.deletingLastPathComponent().appendingPathComponent(name)
        let (process, output) = try launch([], environment: environment, executable: executable)
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let port = listeningPort(in: output.value) { return TesseraProcess(process: process, port: port, output: output) }
            if !process.isRunning { throw ProcessFailure("\(name) exited with \(process.terminationStatus):\n\(output.value)") }
            try await Task.sleep(for: .milliseconds(50))
        }
        kill(process.processIdentifier, SIGKILL)
        throw ProcessFailure("\(name) did not start listening within \(timeout):\n\(output.value)")
    }

    private static func launch(
        _ arguments: [String], environment: [String: String], directory: URL? = nil, executable: URL = binary
    ) throws -> (Process, Output) {
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            throw ProcessFailure("no binary at \(executable.path): run `swift build` first (scripts/test does)")
        }
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = directory }
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("TESSERA_") }
        env.merge(environment) { $1 }
        process.environment = env
        let pipe = Pipe()
        let output = Output()
        let copy = try logCopy(for: executable)
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty {
                output.ended.withLock { $0 = true }
                handle.readabilityHandler = nil
                try? copy?.close()
            } else {
                output.append(data)
                copy?.write(data)
            }
        }
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        return (process, output)
    }

    /// With `TESSERA_TEST_LOG_DIR` set (scripts/test sets it), every process's output is also kept
    /// there, so that scripts/check-logs can search the logs of the whole run for secrets. A copy
    /// that cannot be made fails the test: a log missing from the search would pass unsearched.
    private static func logCopy(for executable: URL) throws -> FileHandle? {
        guard let directory = ProcessInfo.processInfo.environment["TESSERA_TEST_LOG_DIR"] else { return nil }
        let file = URL(fileURLWithPath: directory).appendingPathComponent("\(executable.lastPathComponent)-\(UUID().uuidString).log")
        guard FileManager.default.createFile(atPath: file.path, contents: nil) else {
            throw ProcessFailure("cannot keep a copy of the process's output at \(file.path)")
        }
        return try FileHandle(forWritingTo: file)
    }

    private static func listeningPort(in text: String) -> Int? {
        guard let range = text.range(of: #"listening on http://127\.0\.0\.1:(\d+)"#, options: .regularExpression) else { return nil }
        return Int(text[range].split(separator: ":").last!)
    }

    /// SIGTERM (graceful), then SIGKILL if it has not ended in 10 s.
    func stop() async {
        await terminate(process, with: SIGTERM, grace: .seconds(10))
    }

    /// SIGKILL: a crash, with no graceful shutdown.
    func crash() async {
        await terminate(process, with: SIGKILL, grace: .seconds(10))
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

extension TesseraProcess {
    /// One request to this process over loopback.
    func call(_ method: HTTPRequest.Method, _ uri: String, body: [String: Any]? = nil, bearer: String? = nil) async throws -> Reply {
        let text = body.map(jsonBody)
        return try await TestClient.withClient(host: "127.0.0.1", port: port) { client in
            try await client.call(method, uri, body: text, bearer: bearer)
        }
    }
}

/// Polls until `condition` holds, for at most `limit`.
func eventually(_ limit: Duration = .seconds(15), _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(100))
    }
    return false
}

struct ProcessFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A temporary directory removed when the scope ends.
func withTemporaryDirectory<T>(_ body: (URL) async throws -> T) async throws -> T {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    return try await body(directory)
}
