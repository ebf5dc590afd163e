import NIOCore

/// A minimal `text/event-stream` parser (the WHATWG rules Tessera's stream needs: `event:`
/// and `data:` fields, events ended by a blank line, comments ignored).
struct ServerSentEvents {
    struct Event: Equatable {
        var name: String
        var data: String
    }

    private var pending: [UInt8] = []
    private var name = ""
    private var data: [String] = []

    /// The events completed by this chunk.
    mutating func feed(_ chunk: ByteBuffer) -> [Event] {
        pending.append(contentsOf: chunk.readableBytesView)
        var events: [Event] = []
        while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
            var line = pending[..<newline]
            if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
            pending.removeSubrange(...newline)
            let text = String(decoding: line, as: UTF8.self)
            if text.isEmpty {
                if !data.isEmpty { events.append(Event(name: name.isEmpty ? "message" : name, data: data.joined(separator: "\n"))) }
                name = ""
                data = []
                continue
            }
            guard !text.hasPrefix(":") else { continue }
            let field: Substring
            var value: Substring
            if let colon = text.firstIndex(of: ":") {
                field = text[..<colon]
                value = text[text.index(after: colon)...]
                if value.first == " " { value = value.dropFirst() }
            } else {
                field = text[...]
                value = ""
            }
            switch field {
            case "event": name = String(value)
            case "data": data.append(String(value))
            default: break
            }
        }
        // A line longer than any event Tessera sends: drop it rather than grow without bound.
        if pending.count > 1 << 20 { pending.removeAll() }
        return events
    }
}
