import Foundation
import TesseraTestSupport
import Testing

@testable import TesseraRESP

/// Makes a throwaway CA and a server certificate for localhost / 127.0.0.1 with openssl.
func makeTestCertificates(in directory: URL) async throws {
    let script = """
        set -e
        cd '\(directory.path)'
        openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj '/CN=Tessera Test CA' -keyout ca.key -out ca.crt 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -subj '/CN=localhost' -keyout server.key -out server.csr 2>/dev/null
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.ext
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 -extfile san.ext -out server.crt 2>/dev/null
        """
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = ["-c", script]
    try process.run()
    // Polled, not waitUntilExit(): blocking a cooperative thread starves every other test.
    while process.isRunning { try await Task.sleep(for: .milliseconds(20)) }
    guard process.terminationStatus == 0 else {
        throw RedisServerProcess.Failure(description: "openssl failed to make test certificates (is openssl installed?)")
    }
}

@Suite("TLS (rediss://)", .serialized)
struct TLSTests {
    @Test("rediss:// with a CA file verifies the server and works; an untrusted server is refused")
    func tls() async throws {
        let certificates = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-tls-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: certificates, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: certificates) }
        try await makeTestCertificates(in: certificates)
        let tlsPort = try RedisServerProcess.freeLoopbackPort()
        let options = RedisServerProcess.Options(extraConfiguration: [
            "tls-port \(tlsPort)",
            "tls-cert-file \(certificates.path)/server.crt",
            "tls-key-file \(certificates.path)/server.key",
            "tls-ca-cert-file \(certificates.path)/ca.crt",
            "tls-auth-clients no",
        ])
        try await withRedisServer(options: options) { server throws in
            let ca = "\(certificates.path)/ca.crt"
            for host in ["localhost", "127.0.0.1"] {
                try await withClient(try testConfiguration(server, url: "rediss://\(host):\(tlsPort)/0?ca_file=\(ca)")) { client throws in
                    #expect(try await client.send("SET", "over-tls", "yes") == .simpleString("OK"))
                    #expect(try await client.send("GET", "over-tls").string == "yes")
                }
            }
            // Without the CA the certificate is not trusted: a connection error, not a hang.
            try await withClient(try testConfiguration(server, url: "rediss://localhost:\(tlsPort)")) { client throws in
                await expectRedisError("untrusted", { $0.isConnectionError }) { try await client.send("PING") }
            }
        }
    }
}
