import Logging

/// Writes `AuditEvent`s as log records (label `tessera.audit`): message and `event` field are
/// the event's name; `user_id`, `session_id`, `client_ip`, `request_id` and `reason` are set when
/// known. Which handler gets them (text, JSON, a collector) is the process's logging setup.
public struct AuditLog: Sendable {
    public static let label = "tessera.audit"

    public let logger: Logger

    public init(logger: Logger = Logger(label: AuditLog.label)) {
        self.logger = logger
    }

    /// `client` is where the request came from: its IP and request id go into the record.
    public func record(_ event: AuditEvent, client: ClientInfo = .init()) {
        var metadata: Logger.Metadata = ["event": .string(event.name.rawValue)]
        metadata["user_id"] = event.userID.map { .string($0) }
        metadata["session_id"] = event.sessionID.map { .string($0) }
        metadata["client_ip"] = client.ipAddress.map { .string($0) }
        metadata["request_id"] = client.requestID.map { .string($0) }
        metadata["reason"] = event.reason.map { .string($0) }
        for (key, value) in event.details where metadata[key] == nil {
            metadata[key] = .string(value)
        }
        logger.log(level: event.name.isAlarm ? .warning : .notice, "\(event.name.rawValue)", metadata: metadata)
    }
}
