import ArgumentParser
import Foundation
import Tessera
import TesseraApp

struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "List, rotate and retire the signing, refresh-token and encryption keys.",
        discussion: """
            Works on the key files serve uses (same flags and TESSERA_* variables). Running \
            instances sharing the files pick a change up within --key-reload-interval.
            """,
        subcommands: [List.self, Rotate.self, Retire.self, Reseal.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show every key: kind, id, state (active, staged, previous).")
        @OptionGroup var options: ServerOptions

        func run() async throws {
            let deployment = await Deployment.open(options)
            let statuses: [KeyStatus]
            do {
                statuses = try deployment.runtime.keyFiles.list(now: Date())
            } catch {
                Deployment.fail(error)
            }
            printTable(
                ["KIND", "ID", "STATE", "CREATED", "ACTIVATES"],
                statuses.map { [$0.kind.rawValue, $0.id, $0.state.rawValue, timestamp($0.createdAt), timestamp($0.activatesAt)] }
            )
        }
    }

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a new key of a kind.",
            discussion: """
                signing: the new key is published in the JWKS at once and signs from --key-publish-delay \
                seconds on (the activation time is in the key file, so every instance switches at once); \
                the old key keeps verifying until retired. refresh: new refresh tokens are MACed under the \
                new key, tokens under the old one still refresh (and come back under the new one). \
                encryption: the new key seals from now on, the old ones still open; run `keys reseal` to \
                re-seal stored values now.
                """
        )
        @OptionGroup var options: ServerOptions
        @Option(help: "signing, refresh or encryption.")
        var kind: KeyKind = .signing

        func run() async throws {
            let deployment = await Deployment.open(options)
            let delay = deployment.configuration.effectiveKeyPublishDelay
            let rotated: KeyStatus
            do {
                rotated = try await deployment.runtime.keyFiles.rotate(kind, now: Date(), publishDelay: delay).key
            } catch {
                Deployment.fail(error)
            }
            deployment.runtime.service.audit.record(.keyRotated(kind: kind.rawValue, keyID: rotated.id))
            let reload = Int(deployment.configuration.keyReloadInterval)
            switch kind {
            case .signing:
                if let activatesAt = rotated.activatesAt {
                    print("signing key \(rotated.id) staged: published now, signs from \(timestamp(activatesAt)) (in \(Int(delay)) s)")
                } else {
                    print("signing key \(rotated.id) added: signs as soon as instances load it")
                }
            case .refresh:
                print("refresh key \(rotated.id) added: MACs new refresh tokens; the previous key still verifies until retired")
            case .encryption:
                print("encryption key \(rotated.id) added: seals from now on; run `tessera keys reseal` to re-seal stored values now")
            }
            print("running instances load it within \(reload) s")
        }
    }

    struct Retire: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a key: what it signed, MACed or sealed stops being accepted.",
            discussion: "The key in use is refused; an encryption key is refused while stored values are sealed under it."
        )
        @OptionGroup var options: ServerOptions
        @Argument(help: "The key id, as `keys list` shows it (an id starting with - goes after --).")
        var kid: String

        func run() async throws {
            let deployment = await Deployment.open(options)
            let files = deployment.runtime.keyFiles
            let kid = kid
            let kind = await deployment.run { service in
                try await files.retire(kid, now: Date()) { try await service.sealedSecretCount(keyID: $0) }.kind
            }
            deployment.runtime.service.audit.record(.adminAction("key.retired", details: ["key_kind": kind.rawValue, "key_id": kid]))
            print("\(kind.rawValue) key \(kid) retired; running instances drop it within \(Int(deployment.configuration.keyReloadInterval)) s")
        }
    }

    struct Reseal: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-seal every stored MFA secret and session credential under the newest encryption key now."
        )
        @OptionGroup var options: ServerOptions

        func run() async throws {
            let deployment = await Deployment.open(options)
            let report = await deployment.run { try await $0.resealSecrets() }
            for (what, counts) in [("mfa secrets", report.mfaSecrets), ("credentials", report.credentials)] {
                print("\(what): \(counts.resealed) re-sealed, \(counts.current) already current, "
                    + "\(counts.changedMeanwhile) changed meanwhile, \(counts.unreadable) unreadable")
            }
            if report.mfaSecrets.unreadable + report.credentials.unreadable > 0 { throw ExitCode(Deployment.ExitStatus.failure.rawValue) }
        }
    }
}

extension KeyKind: ExpressibleByArgument {}
