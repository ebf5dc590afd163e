import Foundation
import Logging

extension LineLogHandler {
    /// `2026-12-03T16:26:24+0000 notice tessera: key=value [Module] message`: metadata sorted by
    /// key, local time to the second with the UTC offset.
    func textLine(_ event: LogEvent, _ fields: Logger.Metadata) -> [UInt8] {
        var line = Self.localTimestamp(Date())
        line += " \(event.level)"
        if !label.isEmpty { line += " " + label }
        line += ":"
        for (key, value) in fields.sorted(by: { $0.key < $1.key }) { line += " \(key)=\(value)" }
        line += " [\(event.source)] \(event.message)\n"
        return Array(line.utf8)
    }

    static func localTimestamp(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        localtime_r(&seconds, &parts)
        var buffer = [Int8](repeating: 0, count: 32)
        let count = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S%z", &parts)
        return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
