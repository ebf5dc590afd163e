import Foundation
import Tessera
import Testing

/// Issue 10, finding 5: one address is one account whatever its Unicode spelling, on every user
/// store (SQLite and PostgreSQL compare bytes, so NFC and NFD were two rows there), and rows
/// stored before normalization keep logging in.
@Suite("Email normalization on every user store")
struct EmailNormalizationTests {
    static let password = "correct horse"

    func withService(_ kind: UserStoreKind, _ body: (AuthService, any UserStore) async throws -> Void) async throws {
        try await withUserStore(kind) { f in
            let clock = ManualClock(Date())
            var policy = TokenPolicy()
            policy.bcryptCost = 4
            let outbox = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-outbox-\(UUID().uuidString)").path
            defer { try? FileManager.default.removeItem(atPath: outbox) }
            let service = try await AuthService(
                policy: policy, users: f.store, tokens: MemoryTokenStore(clock: clock), keys: .generate(),
                security: .local(secrets: .generate(), outbox: outbox, rateLimits: .unlimited, clock: clock), clock: clock
            )
            try await body(service, f.store)
        }
    }

    func logsIn(_ service: AuthService, _ email: String) async throws -> User? {
        guard case .tokens(let grant) = try await service.login(email: email, password: Self.password) else { return nil }
        return grant.user
    }

    @Test(arguments: UserStoreKind.allCases)
    func nfcNFDCaseAndFullWidthSpellingsAreOneAccount(kind: UserStoreKind) async throws {
        try await withService(kind) { service, _ in
            let nfc = "jos\u{E9}@example.com"
            let created = try await service.register(email: nfc, password: Self.password).user
            #expect(Array(created.email.utf8) == Array(nfc.utf8))
            let spellings = [
                "jose\u{301}@example.com",  // NFD
                "JOS\u{C9}@Example.COM",  // upper case
                "  jose\u{301}@EXAMPLE.com ",
                "\u{FF4A}\u{FF4F}\u{FF53}\u{E9}@\u{FF45}\u{FF58}\u{FF41}\u{FF4D}\u{FF50}\u{FF4C}\u{FF45}.\u{FF43}\u{FF4F}\u{FF4D}",  // full-width
            ]
            for spelling in spellings {
                await #expect(throws: AuthError.emailTaken, "\(spelling.unicodeScalars.map { String($0.value, radix: 16) })") {
                    _ = try await service.register(email: spelling, password: Self.password)
                }
                #expect(try await logsIn(service, spelling)?.id == created.id)
            }
            // Full case folding: ß and ss are one address, as are final and medial sigma.
            _ = try await service.register(email: "stra\u{DF}e@example.com", password: Self.password)
            await #expect(throws: AuthError.emailTaken) { _ = try await service.register(email: "STRASSE@example.com", password: Self.password) }
        }
    }

    @Test(arguments: UserStoreKind.allCases)
    func invisibleAndControlCharactersAreRefused(kind: UserStoreKind) async throws {
        try await withService(kind) { service, _ in
            _ = try await service.register(email: "jose@example.com", password: Self.password)
            for email in ["jo\u{200B}se@example.com", "jo\u{AD}se@example.com", "\u{FEFF}jose@example.com", "jose@exa\u{202E}mple.com",
                "jo\u{85}se@example.com", "jose\u{E0001}@example.com"]
            {
                await #expect(throws: AuthError.self) { _ = try await service.register(email: email, password: Self.password) }
                await #expect(throws: AuthError.invalidCredentials) { _ = try await service.login(email: email, password: Self.password) }
            }
        }
    }

    /// A row written by a Tessera before normalization: trimmed and lower-cased, here in NFD.
    @Test(arguments: UserStoreKind.allCases)
    func rowsStoredBeforeNormalizationLogInAndMoveToTheirNormalizedKey(kind: UserStoreKind) async throws {
        try await withService(kind) { service, users in
            let nfd = "rene\u{301}@example.com"
            let nfc = "ren\u{E9}@example.com"
            var legacy = makeUser(email: nfd)
            legacy.passwordHash = try await PasswordHasher(cost: 4).hash(Self.password)
            try await users.createUser(legacy)
            #expect(try await logsIn(service, nfd)?.id == legacy.id)
            let moved = try #require(try await users.user(id: legacy.id))
            #expect(Array(moved.email.utf8) == Array(nfc.utf8))
            #expect(try await logsIn(service, "REN\u{C9}@example.com")?.id == legacy.id)
            await #expect(throws: AuthError.emailTaken) { _ = try await service.register(email: nfd, password: Self.password) }
        }
    }
}
