import Crypto
import Foundation

/// Why a key change was refused. `code` is the stable name the admin API and CLI report.
public enum KeyRotationError: Error, Equatable, Sendable, CustomStringConvertible {
    case keyNotFound(String)
    /// The key signs, seals or MACs now; another must take over first.
    case keyInUse(String)
    /// A staged signing key is waiting for its activation; retire it or wait.
    case rotationPending(String, activatesAt: Date)
    /// Values are still sealed under this encryption key; `keys reseal` first.
    case keyStillSealing(String, count: Int)

    public var code: String {
        switch self {
        case .keyNotFound: "key_not_found"
        case .keyInUse: "key_in_use"
        case .rotationPending: "rotation_pending"
        case .keyStillSealing: "key_still_sealing"
        }
    }

    public var description: String {
        switch self {
        case .keyNotFound(let id): "no key with id \(id)"
        case .keyInUse(let id): "key \(id) is the one in use; rotate first, and retire it once the new key has taken over"
        case .rotationPending(let id, let date):
            "signing key \(id) is staged and activates at \(date.formatted(.iso8601)); wait for it, or retire it to cancel"
        case .keyStillSealing(let id, let count):
            "\(count) stored value(s) are still sealed under encryption key \(id); run `tessera keys reseal` first"
        }
    }
}

/// Key changes as pure functions of the key sets, so that the CLI, the admin API and the tests
/// share one set of rules.
extension KeyMaterial {
    /// Prepends a new signing key that is published at once and signs from `now + publishDelay`.
    public func stagingSigningKey(now: Date, publishDelay: TimeInterval) throws(KeyRotationError) -> (KeyMaterial, SigningKey) {
        if let pending = signingKeys.first(where: { !$0.isActive(at: now) }), let activatesAt = pending.activatesAt {
            throw .rotationPending(pending.id, activatesAt: activatesAt)
        }
        let key = SigningKey(
            id: KeyMaterial.keyID(byteCount: 12), privateKey: .init(), createdAt: now,
            activatesAt: publishDelay > 0 ? Self.wholeSecondAfter(now.addingTimeInterval(publishDelay)) : nil
        )
        var next = self
        next.signingKeys.insert(key, at: 0)
        return (next, key)
    }

    /// Tokens carry whole-second `iat`s, which pick their signing key: activation on a whole
    /// second means every token of that second and later is under the new key.
    static func wholeSecondAfter(_ date: Date) -> Date {
        Date(timeIntervalSince1970: date.timeIntervalSince1970.rounded(.up))
    }

    /// Prepends a new refresh key: new tokens are MACed under it, the old ones still verify.
    public func rotatingRefreshKey(now: Date) -> (KeyMaterial, RefreshKey) {
        let key = RefreshKey(key: SymmetricKey(size: .bits256), createdAt: now)
        var next = self
        next.refreshKeys.insert(key, at: 0)
        return (next, key)
    }

    /// Whether `id` names one of these keys (signing or refresh).
    public func contains(keyID id: String) -> Bool {
        signingKeys.contains { $0.id == id } || refreshKeys.contains { $0.id == id }
    }

    /// Removes a signing or refresh key. The key signing now and the refresh key MACing new
    /// tokens are refused; a staged key may be retired (that cancels its rotation).
    public func retiring(keyID id: String, now: Date) throws(KeyRotationError) -> KeyMaterial {
        var next = self
        if let index = signingKeys.firstIndex(where: { $0.id == id }) {
            guard signingKey(at: now).id != id, signingKeys.count > 1 else { throw .keyInUse(id) }
            next.signingKeys.remove(at: index)
            return next
        }
        if let index = refreshKeys.firstIndex(where: { $0.id == id }) {
            guard index > 0 else { throw .keyInUse(id) }
            next.refreshKeys.remove(at: index)
            return next
        }
        throw .keyNotFound(id)
    }
}

extension SecretBox {
    /// Prepends a new key: it seals from now on, every older key still opens.
    public func rotating() -> (SecretBox, Key) {
        let key = Key(id: KeyMaterial.keyID(byteCount: 9), key: SymmetricKey(size: .bits256))
        return (SecretBox(keys: [key] + keys), key)
    }

    /// Removes an encryption key other than the sealing one. Callers first make sure nothing
    /// is sealed under it any more (`AuthService.resealSecrets`).
    public func retiring(keyID id: String) throws(KeyRotationError) -> SecretBox {
        guard let index = keys.firstIndex(where: { $0.id == id }) else { throw .keyNotFound(id) }
        guard index > 0 else { throw .keyInUse(id) }
        var remaining = keys
        remaining.remove(at: index)
        return SecretBox(keys: remaining)
    }

    /// The id of the key a sealed value was sealed under; nil when it is not a sealed value.
    public static func keyID(of sealed: String) -> String? {
        let parts = sealed.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "v1" else { return nil }
        return String(parts[1])
    }
}
