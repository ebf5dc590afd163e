import Foundation

/// Email addresses as account keys: one spelling per address.
///
/// NFKC, then full case folding, then NFKC again (Unicode's NFKC_Casefold): `josé` in NFC and
/// NFD, full-width letters and upper case all give the same key. Invisible characters (format
/// characters, default-ignorables such as zero-width spaces, soft hyphens, the BOM and bidi
/// controls) are refused: they would make look-alike addresses.
public enum EmailAddress {
    /// The key for a new or changed address; throws `AuthError.invalidRequest` when malformed.
    public static func normalized(_ raw: String) throws -> String {
        guard let email = canonical(raw), isWellFormed(email) else {
            throw AuthError.invalidRequest("email is not a valid address")
        }
        return email
    }

    /// The forms to look an existing account up by, best first: the canonical key, then the key
    /// Tessera stored before normalization (trimmed, lower-cased) for rows written then.
    /// Never fails: a login with a malformed address just finds nothing.
    static func lookupKeys(_ raw: String) -> [String] {
        let legacy = legacyKey(raw)
        guard let email = canonical(raw) else { return [legacy] }
        // Bytes, not `==`: Swift compares strings by canonical equivalence (NFC == NFD), the
        // SQL stores by bytes.
        return email.utf8.elementsEqual(legacy.utf8) ? [email] : [email, legacy]
    }

    /// What rate limits and the lockout are keyed by: stable for any input.
    static func limitKey(_ raw: String) -> String { canonical(raw) ?? legacyKey(raw) }

    static func legacyKey(_ raw: String) -> String { raw.trimmingCharacters(in: .whitespacesAndNewlines).lowercased() }

    private static func canonical(_ raw: String) -> String? {
        let trimmed = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        // Bounded before any Unicode work: an address is at most 254 bytes.
        guard trimmed.utf8.count <= 1024, !trimmed.unicodeScalars.contains(where: isInvisible) else { return nil }
        let folded = trimmed.precomposedStringWithCompatibilityMapping.folding(options: [.caseInsensitive], locale: nil)
            .precomposedStringWithCompatibilityMapping
        guard !folded.unicodeScalars.contains(where: isInvisible) else { return nil }
        return folded
    }

    private static func isInvisible(_ scalar: Unicode.Scalar) -> Bool {
        let properties = scalar.properties
        return properties.generalCategory == .format || properties.generalCategory == .control || properties.isDefaultIgnorableCodePoint || properties.isBidiControl
            || properties.isNoncharacterCodePoint
    }

    private static func isWellFormed(_ email: String) -> Bool {
        let parts = email.split(separator: "@", omittingEmptySubsequences: false)
        return email.utf8.count <= 254 && parts.count == 2 && !parts[0].isEmpty && parts[0].utf8.count <= 64
            && parts[1].contains(".") && !parts[1].hasPrefix(".") && !parts[1].hasSuffix(".") && !parts[1].contains("..")
            && email.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value != 0x7F && !"()<>,;:\\\"[]".unicodeScalars.contains($0) })
    }
}
