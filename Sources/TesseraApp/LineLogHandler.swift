import Foundation
import Logging

/// Tessera's log handler: one line per record on standard error, as text (`--log-format text`,
/// the default) or JSON (`--log-format json`).
///
/// Setting metadata only stores the value; a line's metadata is formatted when a record is
/// written. Every request sets metadata (its request ids) and most log nothing, so formatting on
/// each set (as swift-log's `StreamLogHandler` does) cost two sorts and string joins per request.
/// Lines are written whole, one `write` each, so concurrent records never interleave.
public struct LineLogHandler: LogHandler {
    public enum Format: Sendable {
        /// `<time> <level> <label>: key=value… [<source>] <message>`, `StreamLogHandler`'s layout.
        case text
        /// `{"ts": RFC 3339 with milliseconds, "level", "label", "message", "source", …metadata}`.
        case json
    }

    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    let label: String
    private let format: Format
    private let output: @Sendable ([UInt8]) -> Void

    public init(
        label: String, level: Logger.Level, format: Format, output: @escaping @Sendable ([UInt8]) -> Void = LineLogHandler.standardError
    ) {
        self.label = label
        self.logLevel = level
        self.format = format
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
        let line: [UInt8]?
        switch format {
        case .text: line = textLine(event, fields)
        case .json: line = jsonLine(event, fields)
        }
        if let line { output(line) }
    }
}
