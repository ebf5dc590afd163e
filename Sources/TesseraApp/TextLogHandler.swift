import Foundation
import Logging

/// `--log-format text` (the default): one line per record on standard error,
/// `<time> <level> <label>: key=value… [<source>] <message>`, the layout of swift-log's
/// `StreamLogHandler`.
///
/// Unlike it, setting metadata only stores the value: the line's metadata is formatted when a
/// record is written. Every request sets metadata (its request ids) and most log nothing, so
/// formatting on each set cost two sorts and string joins per request on the hot paths.
/// Lines are written whole, one `write` each, so concurrent records never interleave.
public struct TextLogHandler: LogHandler {
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

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = metadata
        if let provided = metadataProvider?.get() { fields.merge(provided) { $1 } }
        if let extra = event.metadata { fields.merge(extra) { $1 } }
        var line = Self.timestamp(Date())
        line += " \(event.level)"
        if !label.isEmpty { line += " " + label }
        line += ":"
        for (key, value) in fields.sorted(by: { $0.key < $1.key }) { line += " \(key)=\(value)" }
        line += " [\(event.source)] \(event.message)\n"
        output(Array(line.utf8))
    }

    /// Local time to the second with the UTC offset, e.g. `2026-12-03T16:26:24+0000`.
    static func timestamp(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        localtime_r(&seconds, &parts)
        var buffer = [Int8](repeating: 0, count: 32)
        let count = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S%z", &parts)
        return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
