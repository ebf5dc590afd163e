import Foundation
import Logging
import Synchronization

/// `--log-format json`: one JSON object per line on standard error, for log shippers.
///
/// `{"ts": RFC 3339 with milliseconds, "level", "label", "message", "source", …metadata}`;
/// metadata keys become top-level fields (a key that collides with one of the fixed fields is
/// kept under `metadata`). Lines are written whole, one `write` each, so concurrent records never
/// interleave.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let output: @Sendable ([UInt8]) -> Void

    public init(label: String, level: Logger.Level, output: @escaping @Sendable ([UInt8]) -> Void = JSONLogHandler.standardError) {
        self.label = label
        self.logLevel = level
        self.output = output
    }

    public static let standardError: @Sendable ([UInt8]) -> Void = { line in
        line.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = metadata
        if let provided = metadataProvider?.get() { fields.merge(provided) { $1 } }
        if let extra = event.metadata { fields.merge(extra) { $1 } }
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
            return
        }
        line.append(0x0A)
        output(Array(line))
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
