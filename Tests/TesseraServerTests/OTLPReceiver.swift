import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// A collector for one test: an HTTP server on a free loopback port that keeps every body
/// posted to `/v1/traces` and answers as an OTLP/HTTP collector does (200, empty protobuf).
final class OTLPReceiver: Sendable {
    struct Export: Sendable {
        var contentType: String?
        var body: [UInt8]
    }

    private let stored = Mutex<[Export]>([])
    private let boundPort = Mutex<Int?>(nil)

    var exports: [Export] { stored.withLock { $0 } }
    var spans: [OTLPSpan] { exports.flatMap { (try? OTLPSpan.decode(request: $0.body)) ?? [] } }

    /// Serves while `body` runs, with the receiver's base URL.
    func serving<T: Sendable>(_ body: @Sendable (_ url: String) async throws -> T) async throws -> T {
        let router = Router()
        router.post("v1/traces") { request, _ in
            let bytes = try await request.body.collect(upTo: 16 << 20)
            self.stored.withLock { $0.append(Export(contentType: request.headers[.contentType], body: Array(bytes.readableBytesView))) }
            return Response(status: .ok, headers: [.contentType: "application/x-protobuf"])
        }
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in self.boundPort.withLock { $0 = channel.localAddress?.port } },
            logger: Logger(label: "otlp-receiver")
        )
        let group = ServiceGroup(configuration: .init(services: [app], logger: Logger(label: "otlp-receiver")))
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            defer { tasks.cancelAll() }
            var port: Int?
            for _ in 0..<400 {
                port = boundPort.withLock { $0 }
                if port != nil { break }
                try await Task.sleep(for: .milliseconds(25))
            }
            guard let port else { throw ProtoReader.Malformed() }
            let url = "http://127.0.0.1:\(port)"
            let result = try await body(url)
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            return result
        }
    }
}

/// The fields of an OTLP span a test looks at, decoded from the protobuf wire format
/// (opentelemetry-proto `ExportTraceServiceRequest`) by hand: no generated code.
struct OTLPSpan: Sendable {
    var traceID = ""
    var spanID = ""
    var parentSpanID = ""
    var name = ""
    var kind = 0
    var attributes: [String: String] = [:]
    var serviceName: String?

    static func decode(request: [UInt8]) throws -> [OTLPSpan] {
        var spans: [OTLPSpan] = []
        for resourceSpans in try ProtoReader(request).fields(1) {
            var serviceName: String?
            for resource in try ProtoReader(resourceSpans).fields(1) {
                let attributes = try attributesOf(ProtoReader(resource).fields(1))
                serviceName = attributes["service.name"]
            }
            for scopeSpans in try ProtoReader(resourceSpans).fields(2) {
                for raw in try ProtoReader(scopeSpans).fields(2) {
                    var span = OTLPSpan()
                    span.serviceName = serviceName
                    let reader = ProtoReader(raw)
                    span.traceID = try reader.fields(1).first.map(hex) ?? ""
                    span.spanID = try reader.fields(2).first.map(hex) ?? ""
                    span.parentSpanID = try reader.fields(4).first.map(hex) ?? ""
                    span.name = try reader.fields(5).first.map { String(decoding: $0, as: UTF8.self) } ?? ""
                    span.kind = try reader.varints(6).first.map(Int.init) ?? 0
                    span.attributes = try attributesOf(reader.fields(9))
                    spans.append(span)
                }
            }
        }
        return spans
    }

    /// `KeyValue` messages; values other than strings, ints and bools read as "<other>".
    private static func attributesOf(_ pairs: [[UInt8]]) throws -> [String: String] {
        var attributes: [String: String] = [:]
        for pair in pairs {
            let reader = ProtoReader(pair)
            guard let key = try reader.fields(1).first.map({ String(decoding: $0, as: UTF8.self) }) else { continue }
            let value = try reader.fields(2).first.map(ProtoReader.init)
            if let string = try value?.fields(1).first {
                attributes[key] = String(decoding: string, as: UTF8.self)
            } else if let number = try value?.varints(3).first {
                attributes[key] = String(Int64(bitPattern: number))
            } else if let flag = try value?.varints(2).first {
                attributes[key] = flag == 0 ? "false" : "true"
            } else {
                attributes[key] = "<other>"
            }
        }
        return attributes
    }

    private static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
}

/// Protobuf wire format: the length-delimited fields and varints of one message, by number.
struct ProtoReader {
    struct Malformed: Error {}
    let bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func fields(_ number: Int) throws -> [[UInt8]] {
        try entries().compactMap { $0.number == number ? $0.bytes : nil }
    }

    func varints(_ number: Int) throws -> [UInt64] {
        try entries().compactMap { $0.number == number ? $0.varint : nil }
    }

    private func entries() throws -> [(number: Int, bytes: [UInt8]?, varint: UInt64?)] {
        var index = 0
        var result: [(number: Int, bytes: [UInt8]?, varint: UInt64?)] = []
        func varint() throws -> UInt64 {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard index < bytes.count, shift < 64 else { throw Malformed() }
                let byte = bytes[index]
                index += 1
                value |= UInt64(byte & 0x7F) << shift
                if byte & 0x80 == 0 { return value }
                shift += 7
            }
        }
        while index < bytes.count {
            let tag = try varint()
            let number = Int(tag >> 3)
            switch tag & 7 {
            case 0:
                result.append((number, nil, try varint()))
            case 1:
                index += 8
            case 2:
                let length = Int(try varint())
                guard length >= 0, index + length <= bytes.count else { throw Malformed() }
                result.append((number, Array(bytes[index..<(index + length)]), nil))
                index += length
            case 5:
                index += 4
            default:
                throw Malformed()
            }
            guard index <= bytes.count else { throw Malformed() }
        }
        return result
    }
}
