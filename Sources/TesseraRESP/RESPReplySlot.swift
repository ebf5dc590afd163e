import Synchronization

/// What one request gets back: the reply of a single command, or the replies of a pipeline in
/// order (error replies as values).
enum RESPReply: Sendable {
    case one(RESPValue)
    case many([RESPValue])

    var values: [RESPValue] {
        switch self {
        case .one(let value): [value]
        case .many(let values): values
        }
    }
}

/// Where a request's reply goes: resumed exactly once, by the reply, by a failure of the
/// connection, or by the caller's cancellation, whichever comes first; later completions are
/// ignored. A cancelled caller's reply still arrives and is matched (and dropped) in order, so
/// other commands on the same connection are not disturbed.
final class RESPReplySlot: Sendable {
    private enum State {
        case created
        case waiting(CheckedContinuation<RESPReply, any Error>)
        /// Completed before anyone waited (a cancellation that came first).
        case finished(Result<RESPReply, any Error>)
        case done
    }

    private let state = Mutex<State>(.created)

    /// Suspends until the slot is completed. `submit` runs once the continuation is in place
    /// (never when the slot was completed before that, by a cancellation); `onCancel` runs when the task is
    /// cancelled while waiting, after the slot has been failed with `.cancelled`.
    func wait(submit: () -> Void, onCancel: @Sendable () -> Void = {}) async throws -> RESPReply {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<RESPReply, any Error>) in
                let early = self.state.withLock { state -> Result<RESPReply, any Error>? in
                    switch state {
                    case .created:
                        state = .waiting(continuation)
                        return nil
                    case .finished(let result):
                        state = .done
                        return result
                    case .waiting, .done:
                        return .failure(RedisError.cancelled)
                    }
                }
                if let early {
                    continuation.resume(with: early)
                } else {
                    submit()
                }
            }
        } onCancel: {
            if self.complete(.failure(RedisError.cancelled)) { onCancel() }
        }
    }

    /// Completes the slot; false when it was already completed.
    @discardableResult
    func complete(_ result: Result<RESPReply, any Error>) -> Bool {
        let continuation = self.state.withLock { state -> CheckedContinuation<RESPReply, any Error>?? in
            switch state {
            case .waiting(let continuation):
                state = .done
                return .some(continuation)
            case .created:
                state = .finished(result)
                return .some(nil)
            case .finished, .done:
                return .none
            }
        }
        guard let continuation else { return false }
        continuation?.resume(with: result)
        return true
    }
}
