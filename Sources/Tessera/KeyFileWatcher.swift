import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Re-reads the key files when they change (new inode, size or modification time, checked
/// every `interval`) and installs their keys in the key ring, so that instances sharing the
/// files pick up a rotation without a restart. A file that does not load is logged and the
/// keys in force are kept.
public struct KeyFileWatcher: Service {
    public let keyRing: KeyRing
    /// nil: keys not from a file (ephemeral).
    public let keyFile: String?
    public let encryptionKeyFile: String?
    public let interval: Duration
    public let logger: Logger
    private let seen = FileSignatures()

    public init(keyRing: KeyRing, keyFile: String?, encryptionKeyFile: String?, interval: Duration, logger: Logger) {
        self.keyRing = keyRing
        self.keyFile = keyFile
        self.encryptionKeyFile = encryptionKeyFile
        self.interval = interval
        self.logger = logger
        seen.record(keyFile)
        seen.record(encryptionKeyFile)
    }

    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            // Wakes early on graceful shutdown so the service group is not held up.
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            guard !Task.isShuttingDownGracefully, !Task.isCancelled else { return }
            checkNow()
        }
    }

    /// One check of both files; returns whether keys were replaced.
    @discardableResult
    public func checkNow() -> Bool {
        let signing = reload(keyFile, what: "signing keys") { path in
            let material = try KeyFile.load(path: path)
            keyRing.replace(material: material)
            return material.signingKeys.map(\.id)
        }
        let encryption = reload(encryptionKeyFile, what: "encryption keys") { path in
            let box = try EncryptionKeyFile.load(path: path)
            keyRing.replace(secrets: box)
            return box.keys.map(\.id)
        }
        return signing || encryption
    }

    /// Loads and installs `path` when it changed; `install` returns the key ids, for the log.
    private func reload(_ path: String?, what: String, install: (String) throws -> [String]) -> Bool {
        guard let path, seen.changed(path) else { return false }
        do {
            let ids = try install(path)
            seen.record(path)
            logger.notice("\(what) reloaded", metadata: ["key_file": "\(path)", "ids": "\(ids.joined(separator: ","))"])
            return true
        } catch {
            logger.error("\(what): key file changed but does not load; keeping the keys in force", metadata: ["error": "\(error)"])
            return false
        }
    }
}

/// What identifies a version of a file without reading it: inode, size, modification time.
/// A rotation replaces the file by rename, so the inode changes even within one clock tick.
private final class FileSignatures: Sendable {
    private let signatures = Mutex<[String: [Int]]>([:])

    func record(_ path: String?) {
        guard let path else { return }
        let signature = Self.signature(path)
        signatures.withLock { $0[path] = signature }
    }

    func changed(_ path: String) -> Bool {
        guard let now = Self.signature(path) else { return false }
        return signatures.withLock { $0[path] } != now
    }

    private static func signature(_ path: String) -> [Int]? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return [Int(info.st_ino), Int(info.st_size), Int(info.st_mtim.tv_sec), Int(info.st_mtim.tv_nsec)]
    }
}
