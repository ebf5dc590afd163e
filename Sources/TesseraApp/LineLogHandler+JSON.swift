import Foundation
import Logging

extension LineLogHandler {
    /// One JSON object: metadata keys become top-level fields (a key that collides with one of
    /// the fixed fields is kept under `metadata`).
    func jsonLine(_ event: LogEvent, _ fields: Logger.Metadata) -> [UInt8]? {
        var object: [String: Any] = [
            "ts": Self.timestamp(Date()), "level": event.level.rawValue, "label": label, "message": "\(event.message)",
            "source": event.source,
        ]
        var collided: [String: Any] = [:]
        for (key, value) in fields {
            if object[key] == nil { object[key] = Self.json(value) } else { collided[key] = Self.json(value) }
        }
        if !collided.isEmpty { object["metadata"] = collided }
        guard var line = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else {
            return nil
        }
        line.append(0x0A)
        return Array(line)
    }

    static func json(_ value: Logger.Metadata.Value) -> Any {
        switch value {
        case .string(let text): text
        case .stringConvertible(let value): value.description
        case .array(let values): values.map(json)
        case .dictionary(let values): values.mapValues(json)
        }
    }

    /// RFC 3339 in UTC with milliseconds, e.g. `2026-12-01T21:56:31.123Z`.
    static func timestamp(_ date: Date) -> String {
        let milliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        var seconds = time_t(milliseconds / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(milliseconds % 1000), 3))Z"
    }
}
