import Foundation
import Logging
import Synchronization
import TesseraApp
import Testing

@Suite struct LineLogHandlerTextTests {
    final class Lines: Sendable {
        let value = Mutex<[String]>([])
    }

    /// The layout of swift-log's StreamLogHandler, which the text format kept before: log
    /// searches and operators' greps keep working.
    @Test func linesKeepTheStreamLayoutWithMetadataSortedByKey() throws {
        let lines = Lines()
        var handler = LineLogHandler(label: "tessera", level: .info, format: .text) { line in
            lines.value.withLock { $0.append(String(decoding: line, as: UTF8.self)) }
        }
        handler[metadataKey: "request_id"] = "r1"
        handler[metadataKey: "hb.request.id"] = "7"
        let logger = Logger(label: "tessera") { _ in handler }
        logger.notice("session ended", metadata: ["user_id": "u1", "ids": ["x", "y"]])
        logger.debug("not at info")
        var plain = handler
        plain.metadata = [:]
        Logger(label: "tessera") { _ in plain }.warning("no metadata")

        let written = lines.value.withLock { $0 }
        #expect(written.count == 2)
        let pattern = #"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{4} "#
        #expect(written.allSatisfy { $0.range(of: pattern, options: .regularExpression) != nil }, "\(written)")
        let first = try #require(written.first)
        #expect(first.hasSuffix(#" notice tessera: hb.request.id=7 ids=["x", "y"] request_id=r1 user_id=u1 [TesseraServerTests] session ended"# + "\n"), "\(first)")
        #expect(written[1].hasSuffix(" warning tessera: [TesseraServerTests] no metadata\n"), "\(written[1])")
    }
}
