import Foundation
import Tessera
import TesseraSQLite
import Testing

/// The database holds password hashes, sealed TOTP secrets and client addresses.
@Suite("SQLite file modes")
struct SQLiteFileModeTests {
    func mode(_ path: String) throws -> Int {
        try #require(FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
    }

    func withDirectory(_ body: (URL) async throws -> Void) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-mode-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try await body(directory)
    }

    func writeSomething(_ database: SQLiteDatabase) async throws {
        let now = Date()
        try await database.tokenStore().createSession(
            SessionRecord(
                id: SecureRandom.identifier(), userID: "u-1", rotatedAt: now, createdAt: now, lastUsedAt: now,
                idleExpiresAt: now.addingTimeInterval(60), absoluteExpiresAt: now.addingTimeInterval(60)
            )
        )
    }

    @Test func theDatabaseAndItsWALFilesAreCreatedOwnerOnly() async throws {
        try await withDirectory { directory in
            let path = directory.appendingPathComponent("tessera.db").path
            let database = try await openSQLite(path)
            try await writeSomething(database)
            for file in [path, path + "-wal", path + "-shm"] {
                #expect(try mode(file) == 0o600, "\(file)")
            }
        }
    }

    @Test func anExistingWorldReadableDatabaseIsMadeOwnerOnly() async throws {
        try await withDirectory { directory in
            let path = directory.appendingPathComponent("tessera.db").path
            try await writeSomething(try await openSQLite(path))
            for file in [path, path + "-wal", path + "-shm"] where FileManager.default.fileExists(atPath: file) {
                try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: file)
            }
            let reopened = try await openSQLite(path)
            try await writeSomething(reopened)
            for file in [path, path + "-wal", path + "-shm"] {
                #expect(try mode(file) == 0o600, "\(file)")
            }
        }
    }
}
