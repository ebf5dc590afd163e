import Foundation
import HTTPTypes
import HummingbirdTesting
import Testing

/// The HTTP hardening flags on the real binary.
@Suite struct ConnectionProcessTests {
    @Test func connectionsBeyondTheCapWaitUntilOneCloses() async throws {
        let server = try await TesseraProcess.start(["--database-url", "memory:", "--token-store", "memory", "--max-connections", "1"])
        defer { Task { await server.stop() } }
        // Generous receive timeouts: on a loaded machine the first answer can take seconds.
        let first = try RawSocket(port: server.port, receiveTimeout: .seconds(3))
        first.send("GET /.well-known/jwks.json HTTP/1.1\r\nHost: localhost\r\n\r\n")
        #expect(await first.receiveAll().text.hasPrefix("HTTP/1.1 200"))
        // The first connection stays open (keep-alive), so the second is not served yet.
        let second = try RawSocket(port: server.port, receiveTimeout: .seconds(3))
        second.send("GET /.well-known/jwks.json HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        #expect(await second.receiveAll().text.isEmpty)
        first.close()
        let (reply, _) = await second.receiveAll()
        #expect(reply.hasPrefix("HTTP/1.1 200"), "the second connection was not served after the first closed")
    }

    @Test func aHeaderTricklerIsDroppedByTheBinary() async throws {
        let server = try await TesseraProcess.start(["--database-url", "memory:", "--token-store", "memory", "--header-timeout", "1"])
        defer { Task { await server.stop() } }
        // Without the header timeout the connection would stay open until the 60 s idle timeout;
        // the bounds leave room for a loaded machine.
        let slow = try RawSocket(port: server.port, receiveTimeout: .seconds(20))
        slow.send("GET /health HTTP/1.1\r\nHost: local")
        let start = ContinuousClock.now
        let (reply, closed) = await slow.receiveAll()
        #expect(reply.isEmpty)
        #expect(closed)
        #expect(ContinuousClock.now - start < .seconds(15))
    }

    @Test(arguments: [
        (["serve", "--metrics-key", "short"], "metrics key must be at least 16 characters"),
        (["serve", "--service-key", "short"], "service key must be at least 16 characters"),
        (["serve", "--header-timeout", "0"], "timeouts must be positive"),
        (["serve", "--idle-timeout=-1"], "timeouts must be positive"),
        (["serve", "--max-connections", "0"], "max connections must be at least 1"),
        (["serve", "--bcrypt-queue=-1"], "bcrypt queue must not be negative"),
        (["serve", "--audience", ""], "audience must not be empty"),
    ])
    func badHardeningFlagsStopStartupWithOneClearLine(arguments: [String], message: String) async throws {
        try await withTemporaryDirectory { directory in
            let (status, output) = try await TesseraProcess.run(arguments + ["--database-url", "sqlite:\(directory.path)/t.db"])
            #expect(status != 0)
            #expect(output.contains("tessera: error:"), "\(output)")
            #expect(output.contains(message), "\(output)")
        }
    }
}

/// `--log-format json`: every line a log shipper reads is one JSON object.
@Suite struct JSONLogTests {
    @Test func everyLineIsAJSONObjectWithTheFixedFields() async throws {
        let server = try await TesseraProcess.start(
            ["--database-url", "memory:", "--token-store", "memory", "--log-format", "json", "--log-level", "debug"]
        )
        try await TestClient.withClient(host: "127.0.0.1", port: server.port) { client in
            _ = try await client.call(.post, "/v1/auth/login", body: jsonBody(["email": "nobody@example.com", "password": "wrong password"]))
        }
        await server.stop()
        let lines = server.log.split(separator: "\n")
        #expect(lines.count >= 2)
        for line in lines {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(line)")
            for field in ["ts", "level", "label", "message"] { #expect(object[field] is String, "\(line)") }
            #expect((object["ts"] as? String)?.hasSuffix("Z") == true)
        }
        #expect(lines.contains { $0.contains("\"message\":\"Tessera listening on") })
    }

    @Test func anUnknownFormatStopsStartup() async throws {
        let (status, output) = try await TesseraProcess.run(["serve", "--database-url", "memory:", "--log-format", "xml"])
        #expect(status != 0)
        #expect(output.contains("tessera: error: unknown log format 'xml'"), "\(output)")
    }
}
