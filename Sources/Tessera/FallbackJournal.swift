import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The on-disk half of `FallbackTokenStore`'s outage journal: every revocation made while the
/// primary is unreachable is appended here, one JSON line each, and `fsync`ed before the
/// request is answered. A restarted instance reads it back, so an acknowledged logout is not
/// lost when the instance stops before Redis returns (docs/REDIS.md, "The outage journal").
///
/// - The file is created 0600 (it names users and sessions) and bounded by `maximumBytes`:
///   a revocation that does not fit is refused (503), never dropped silently.
/// - Replaying an entry twice is harmless (every entry is a revocation), so the file is only
///   emptied once everything in it has been written to the primary.
/// - A crash in the middle of an append leaves an unterminated last line; it was never
///   acknowledged, and it is cut off when the file is opened again.
public final class FallbackJournal: Sendable {
    public enum Entry: Sendable, Codable, Equatable {
        case revoked(id: String, userID: String, accessTTL: TimeInterval)
        case revokedAll(userID: String, keeping: String?, accessTTL: TimeInterval)
        case denied(key: RevocationKey, userID: String, until: Date)
    }

    public let path: String
    public let maximumBytes: Int
    /// What the file held when it was opened, oldest first.
    public let recovered: [Entry]

    private struct File {
        var descriptor: Int32
        var size: Int
    }

    private let file: Mutex<File>

    /// Opens (or creates) the journal and reads what a previous process left in it.
    public init(path: String, maximumBytes: Int = 16 << 20) throws {
        self.path = path
        self.maximumBytes = maximumBytes
        let existed = FileManager.default.fileExists(atPath: path)
        let descriptor = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw Self.failure("cannot open \(path): \(Self.errnoText())") }
        // An existing file keeps its mode on open: make it private like a new one.
        guard fchmod(descriptor, 0o600) == 0 else {
            close(descriptor)
            throw Self.failure("cannot make \(path) private: \(Self.errnoText())")
        }
        do {
            let data = try Self.readAll(descriptor)
            let (entries, validLength) = try Self.parse(data, path: path)
            if validLength < data.count {
                guard ftruncate(descriptor, off_t(validLength)) == 0, fsync(descriptor) == 0 else {
                    throw Self.failure("cannot cut the torn last line of \(path): \(Self.errnoText())")
                }
            }
            if !existed { Self.syncDirectory(of: path) }
            self.recovered = entries
            self.file = Mutex(File(descriptor: descriptor, size: validLength))
        } catch {
            close(descriptor)
            throw error
        }
    }

    deinit {
        file.withLock { _ = close($0.descriptor) }
    }

    /// Bytes written and not yet cleared.
    public var size: Int { file.withLock { $0.size } }

    /// Appends the entries and waits until they are on disk. Throws `StoreError` when the file
    /// is full or cannot be written; the caller must then not acknowledge the revocation.
    public func append(_ entries: [Entry]) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        var bytes = Data()
        for entry in entries {
            bytes += try encoder.encode(entry)
            bytes.append(UInt8(ascii: "\n"))
        }
        try file.withLock { file in
            guard file.size + bytes.count <= maximumBytes else {
                throw Self.failure("the outage journal \(path) is full (\(maximumBytes) bytes)")
            }
            let written = bytes.withUnsafeBytes { Self.writeAll(file.descriptor, $0) }
            guard written, fsync(file.descriptor) == 0 else {
                let reason = Self.errnoText()
                // Leave no half line behind for the next append to join.
                _ = ftruncate(file.descriptor, off_t(file.size))
                throw Self.failure("cannot write the outage journal \(path): \(reason)")
            }
            file.size += bytes.count
        }
    }

    /// Empties the file once every entry reached the primary.
    public func clear() throws {
        try file.withLock { file in
            guard ftruncate(file.descriptor, 0) == 0, fsync(file.descriptor) == 0 else {
                throw Self.failure("cannot empty the outage journal \(path): \(Self.errnoText())")
            }
            file.size = 0
        }
    }

    // MARK: Plumbing

    static func parse(_ data: Data, path: String) throws -> ([Entry], Int) {
        var entries: [Entry] = []
        var start = data.startIndex
        var line = 0
        let decoder = JSONDecoder()
        while let newline = data[start...].firstIndex(of: UInt8(ascii: "\n")) {
            line += 1
            do {
                entries.append(try decoder.decode(Entry.self, from: data[start..<newline]))
            } catch {
                // A complete line that does not decode is damage, not a torn append: stop
                // rather than forget a revocation that was acknowledged.
                throw failure("line \(line) of the outage journal \(path) is unreadable; repair or move the file")
            }
            start = data.index(after: newline)
        }
        return (entries, start - data.startIndex)
    }

    private static func readAll(_ descriptor: Int32) throws -> Data {
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        var offset: off_t = 0
        while true {
            let count = buffer.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, offset) }
            if count < 0 {
                if errno == EINTR { continue }
                throw failure("cannot read the outage journal: \(errnoText())")
            }
            if count == 0 { return data }
            data.append(contentsOf: buffer[0..<count])
            offset += off_t(count)
        }
    }

    private static func writeAll(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let count = write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if count < 0 {
                if errno == EINTR { continue }
                return false
            }
            offset += count
        }
        return true
    }

    /// A new file's directory entry must be durable too, or the file may vanish in a crash.
    private static func syncDirectory(of path: String) {
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        let descriptor = open(directory, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return }
        _ = fsync(descriptor)
        close(descriptor)
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }

    private static func failure(_ message: String) -> StoreError {
        StoreError(backend: "journal", message: message)
    }
}
