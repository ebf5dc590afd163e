import Foundation
import Logging
import OTel
import ServiceLifecycle
import Tracing

/// `--otlp-endpoint`: spans go to an OpenTelemetry collector over OTLP/HTTP (protobuf), in
/// batches, from a background service. Without it nothing is traced.
public struct TracingConfiguration: Sendable, Equatable {
    /// The collector's traces URL; a URL without a path gets `/v1/traces`.
    public var endpoint: String
    public var serviceName = "tessera"
    /// Share of new traces recorded (0 to 1); a request with a `traceparent` follows its
    /// caller's sampling decision.
    public var sampleRatio: Double = 1

    public init(endpoint: String, serviceName: String = "tessera", sampleRatio: Double = 1) {
        self.endpoint = endpoint
        self.serviceName = serviceName
        self.sampleRatio = sampleRatio
    }

    /// The URL spans are posted to, after checking the settings.
    public func tracesURL() throws -> String {
        guard let url = URL(string: endpoint), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme), url.host != nil,
            url.query == nil
        else {
            throw ConfigurationError("OTLP endpoint '\(endpoint)' is not an http(s) URL with a host and no query")
        }
        guard !serviceName.isEmpty else { throw ConfigurationError("the OTLP service name must not be empty") }
        guard (0...1).contains(sampleRatio) else { throw ConfigurationError("the trace sample ratio must be between 0 and 1") }
        return url.path.isEmpty || url.path == "/" ? endpoint.trimmingSuffix("/") + "/v1/traces" : endpoint
    }
}

/// The tracer behind `TesseraHTTP.Options.tracer`, made from swift-otel without touching any
/// process-wide bootstrap: the runtime hands it to the router and the store wrapper.
public enum TracingExporter {
    public static func make(_ configuration: TracingConfiguration, logger: Logger) throws -> (tracer: any Tracer, service: any Service) {
        var otel = OTel.Configuration.default
        otel.serviceName = configuration.serviceName
        otel.diagnosticLogger = .custom(logger)
        otel.diagnosticLogLevel = .warning
        otel.logs.enabled = false
        otel.metrics.enabled = false
        otel.traces.enabled = true
        otel.traces.exporter = .otlp
        otel.traces.otlpExporter.endpoint = try configuration.tracesURL()
        otel.traces.otlpExporter.protocol = .httpProtobuf
        otel.propagators = [.traceContext]
        guard let sampler = OTel.Configuration.TracesConfiguration.SamplerConfiguration.parentBasedTraceIDRatio(ratio: configuration.sampleRatio) else {
            throw ConfigurationError("the trace sample ratio must be between 0 and 1")
        }
        otel.traces.sampler = sampler
        let backend = try OTel.makeTracingBackend(configuration: otel)
        return (backend.factory, backend.service)
    }
}

extension String {
    fileprivate func trimmingSuffix(_ suffix: String) -> String { hasSuffix(suffix) ? String(dropLast(suffix.count)) : self }
}
