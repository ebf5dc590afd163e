import NIOCore
import NIOEmbedded
import Testing

@testable import TesseraRESP

/// The connection's multiplexing, on a channel with no server behind it: what is written, in
/// how many writes, and which caller gets which reply.
@Suite("RESP channel handler")
struct RESPChannelHandlerTests {
    /// A channel with the handler installed, and the handler itself.
    func makeChannel() async throws -> (NIOAsyncTestingChannel, NIOLoopBound<RESPChannelHandler>) {
        let channel = NIOAsyncTestingChannel()
        let handler = try await channel.eventLoop.submit {
            let handler = RESPChannelHandler(pushHandler: nil)
            try channel.pipeline.syncOperations.addHandler(handler)
            return NIOLoopBound(handler, eventLoop: channel.eventLoop)
        }.get()
        try await channel.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 6379)).get()
        return (channel, handler)
    }

    func submit(
        _ commands: [[RESPArgument]], on channel: NIOAsyncTestingChannel, _ handler: NIOLoopBound<RESPChannelHandler>,
        timeout: TimeAmount = .seconds(5)
    ) -> RESPReplySlot {
        let slot = RESPReplySlot()
        channel.eventLoop.execute { handler.value.submit(commands, slot: slot, timeout: timeout) }
        return slot
    }

    /// Waits for the slot in a task, so that the test can feed replies meanwhile.
    func waiting(_ slot: RESPReplySlot) -> Task<RESPReply, any Error> {
        Task { try await slot.wait(submit: {}) }
    }

    func written(_ channel: NIOAsyncTestingChannel) async throws -> [String] {
        var writes: [String] = []
        while let buffer = try await channel.readOutbound(as: ByteBuffer.self) {
            writes.append(String(buffer: buffer))
        }
        return writes
    }

    @Test func commandsFromManyCallersInOneTickGoOutInOneWrite() async throws {
        let (channel, handler) = try await makeChannel()
        // Ten callers' commands reach the loop before it gets to the flush they scheduled.
        let slots = (0..<10).map { _ in RESPReplySlot() }
        try await channel.eventLoop.submit {
            for (index, slot) in slots.enumerated() {
                handler.value.submit([["GET", RESPArgument("k\(index)")]], slot: slot, timeout: .seconds(5))
            }
        }.get()
        await channel.testingEventLoop.run()
        let writes = try await written(channel)
        #expect(writes.count == 1)
        let expected = (0..<10).map { "*2\r\n$3\r\nGET\r\n$2\r\nk\($0)\r\n" }.joined()
        #expect(writes.first == expected)
        let (flushes, commands, timers) = try await channel.eventLoop.submit {
            (handler.value.flushes, handler.value.commandsWritten, handler.value.timersScheduled)
        }.get()
        #expect(flushes == 1 && commands == 10)
        // One deadline timer for the connection, not one per command.
        #expect(timers == 1)
        _ = slots
        try await channel.close()
    }

    @Test func repliesGoToTheirCallersInOrderAndAPipelineGetsAllOfItsOwn() async throws {
        let (channel, handler) = try await makeChannel()
        let first = submit([["GET", "a"]], on: channel, handler)
        let batch = submit([["GET", "b"], ["GET", "c"], ["GET", "d"]], on: channel, handler)
        let last = submit([["GET", "e"]], on: channel, handler)
        let tasks = [waiting(first), waiting(batch), waiting(last)]
        await channel.testingEventLoop.run()
        for reply in ["A", "B", "C", "D", "E"] {
            try await channel.writeInbound(RESPValue.bulkString(ByteBuffer(string: reply)))
        }
        let replies = try await tasks.asyncMap { try await $0.value.values.map { $0.string ?? "?" } }
        #expect(replies == [["A"], ["B", "C", "D"], ["E"]])
        try await channel.close()
    }

    @Test func aCancelledCallersReplyIsDroppedAndTheNextCallerGetsItsOwn() async throws {
        let (channel, handler) = try await makeChannel()
        let abandoned = submit([["GET", "slow"]], on: channel, handler)
        let next = submit([["GET", "next"]], on: channel, handler)
        let nextTask = waiting(next)
        await channel.testingEventLoop.run()
        // The first caller gives up (its task was cancelled): the slot is failed at once...
        let failedAtOnce = abandoned.complete(.failure(RedisError.cancelled))
        #expect(failedAtOnce)
        // ...and its reply, when it comes, is matched to it and dropped, not given to the next.
        try await channel.writeInbound(RESPValue.bulkString(ByteBuffer(string: "slow's reply")))
        try await channel.writeInbound(RESPValue.bulkString(ByteBuffer(string: "next's reply")))
        let reply = try await nextTask.value.values.first?.string
        #expect(reply == "next's reply")
        #expect(channel.isActive)
        try await channel.close()
    }

    @Test func oneTimerBoundsEveryCommandAndAMissedDeadlineClosesTheConnection() async throws {
        let (channel, handler) = try await makeChannel()
        let slow = submit([["GET", "a"]], on: channel, handler, timeout: .milliseconds(100))
        let later = submit([["GET", "b"]], on: channel, handler, timeout: .seconds(5))
        let tasks = [waiting(slow), waiting(later)]
        await channel.testingEventLoop.run()
        // Only the earliest deadline has a timer; nothing is answered before it passes.
        await channel.testingEventLoop.advanceTime(by: .milliseconds(150))
        for task in tasks {
            await #expect(throws: RedisError.timeout) { try await task.value }
        }
        #expect(!channel.isActive)
    }

    @Test func aCommandSubmittedAfterTheConnectionClosedIsReportedNotSent() async throws {
        let (channel, handler) = try await makeChannel()
        try await channel.close()
        let slot = RESPReplySlot()
        let task = Task { try await slot.wait(submit: {}) }
        try await channel.eventLoop.submit {
            handler.value.submit([["PING"]], slot: slot, timeout: .seconds(1))
        }.get()
        await #expect(throws: RESPNotSentError.self) { try await task.value }
    }

    @Test func aReplyWithNoCommandWaitingIsAProtocolErrorThatClosesTheConnection() async throws {
        let (channel, handler) = try await makeChannel()
        let pending = submit([["GET", "a"]], on: channel, handler)
        let task = waiting(pending)
        await channel.testingEventLoop.run()
        try await channel.writeInbound(RESPValue.simpleString("OK"))
        _ = try await task.value
        try await channel.writeInbound(RESPValue.simpleString("unexpected"))
        #expect(!channel.isActive)
    }
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        for element in self { result.append(try await transform(element)) }
        return result
    }
}
