import Foundation
import Tessera
import Testing

@Suite("Fallback journal (file)")
struct FallbackJournalTests {
    func withPath(_ body: (String) async throws -> Void) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-journal-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try await body(directory.appendingPathComponent("fallback.journal").path)
    }

    let entries: [FallbackJournal.Entry] = [
        .revoked(id: "s1", userID: "alice", accessTTL: 900),
        .revokedAll(userID: "bob", keeping: "s9", accessTTL: 900),
        .denied(key: .tokenID("j1"), userID: "alice", until: Date(timeIntervalSince1970: 1_800_000_123.25)),
    ]

    @Test func entriesAreReadBackByTheNextProcessAndTheFileIsOwnerOnly() async throws {
        try await withPath { path in
            let journal = try FallbackJournal(path: path)
            #expect(journal.recovered.isEmpty)
            try journal.append(Array(entries[0..<2]))
            try journal.append([entries[2]])
            #expect(try FallbackJournal(path: path).recovered == entries)
            #expect(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int == 0o600)
            try journal.clear()
            #expect(try FallbackJournal(path: path).recovered.isEmpty)
        }
    }

    @Test func aTornLastLineIsDroppedAndTheRestKept() async throws {
        try await withPath { path in
            try FallbackJournal(path: path).append(entries)
            let handle = try #require(FileHandle(forWritingAtPath: path))
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(#"{"revoked":{"id":"s2","#.utf8))
            try handle.close()
            let reopened = try FallbackJournal(path: path)
            #expect(reopened.recovered == entries)
            // The fragment is cut off, so the next append starts on a line of its own.
            try reopened.append([.revoked(id: "s3", userID: "carol", accessTTL: 60)])
            #expect(try FallbackJournal(path: path).recovered == entries + [.revoked(id: "s3", userID: "carol", accessTTL: 60)])
        }
    }

    @Test func aDamagedLineStopsTheOpenInsteadOfForgettingARevocation() async throws {
        try await withPath { path in
            try Data("not json\n".utf8).write(to: URL(fileURLWithPath: path))
            #expect(throws: StoreError.self) { try FallbackJournal(path: path) }
        }
    }

    @Test func aFullJournalRefusesTheRevocation() async throws {
        try await withPath { path in
            let journal = try FallbackJournal(path: path, maximumBytes: 200)
            var acknowledged: [FallbackJournal.Entry] = []
            #expect(throws: StoreError.self) {
                for index in 0..<10 {
                    let entry = FallbackJournal.Entry.revoked(id: "s-\(index)", userID: "alice", accessTTL: 900)
                    try journal.append([entry])
                    acknowledged.append(entry)
                }
            }
            #expect(journal.size <= 200)
            // Every append that returned is on disk; the refused one is not.
            #expect(try FallbackJournal(path: path).recovered == acknowledged)
        }
    }
}
