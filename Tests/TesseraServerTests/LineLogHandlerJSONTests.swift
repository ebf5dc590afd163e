import Foundation
import Logging
import Synchronization
import TesseraApp
import Testing

@Suite struct LineLogHandlerJSONTests {
    final class Lines: Sendable {
        let value = Mutex<[[UInt8]]>([])
    }

    @Test func metadataBecomesFieldsAndTimestampsAreRFC3339() throws {
        let lines = Lines()
        var handler = LineLogHandler(label: "tessera", level: .info, format: .json) { line in lines.value.withLock { $0.append(line) } }
        handler[metadataKey: "instance"] = "a"
        let logger = Logger(label: "tessera") { _ in handler }
        logger.info("session ended", metadata: ["user_id": "u1", "level": "collides", "ids": ["x", "y"]])
        logger.debug("not at info")
        let written = lines.value.withLock { $0 }
        #expect(written.count == 1)
        let line = try #require(written.first)
        #expect(line.last == 0x0A)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any])
        #expect(object["message"] as? String == "session ended")
        #expect(object["level"] as? String == "info")
        #expect(object["user_id"] as? String == "u1")
        #expect(object["instance"] as? String == "a")
        #expect(object["ids"] as? [String] == ["x", "y"])
        #expect((object["metadata"] as? [String: Any])?["level"] as? String == "collides")
        let ts = try #require(object["ts"] as? String)
        #expect(ts.range(of: #"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"#, options: .regularExpression) != nil, "\(ts)")
    }
}
