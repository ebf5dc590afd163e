import Logging
import NIOCore
import NIOEmbedded
import Testing

@testable import TesseraServer

/// The request-head deadline on one connection, on virtual time: a head must be complete within
/// the timeout of its own first byte, however many requests came before it on the connection.
@Suite struct HeadDeadlineHandlerTests {
    let loop = EmbeddedEventLoop()

    func channel() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel(handler: HeadDeadlineHandler(timeout: .seconds(10), logger: Logger(label: "test")), loop: loop)
        try channel.connect(to: .init(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    func receive(_ channel: EmbeddedChannel, _ text: String) throws {
        try channel.writeInbound(ByteBuffer(string: text))
        _ = try channel.readInbound(as: ByteBuffer.self)
    }

    func event(_ channel: EmbeddedChannel, _ event: RequestHeadEvent) {
        channel.pipeline.triggerUserOutboundEvent(event, promise: nil)
    }

    /// A whole head at once, parsed, then answered: the connection awaits the next head.
    func answerOneRequest(_ channel: EmbeddedChannel) throws {
        try receive(channel, "GET / HTTP/1.1\r\n\r\n")
        event(channel, .received)
        event(channel, .awaited)
    }

    @Test func aHeadThatDoesNotArriveInTimeClosesTheConnection() throws {
        let channel = try channel()
        try receive(channel, "GET / HT")
        loop.advanceTime(by: .seconds(9))
        #expect(channel.isActive)
        loop.advanceTime(by: .seconds(1))
        #expect(!channel.isActive)
    }

    @Test func requestsBackToBackKeepTheConnectionAndShareOneTimer() throws {
        let channel = try channel()
        // Thirty requests over 29 s, each head complete at once: never closed.
        for _ in 0..<30 {
            try answerOneRequest(channel)
            loop.advanceTime(by: .seconds(1))
        }
        #expect(channel.isActive)
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    @Test func aLaterHeadIsTimedFromItsOwnFirstByte() throws {
        let channel = try channel()
        try answerOneRequest(channel)
        // The next head starts 8 s later and trickles: the first head's timer (due at 10 s)
        // must not close it, and its own deadline (18 s) must.
        loop.advanceTime(by: .seconds(8))
        try receive(channel, "GET")
        loop.advanceTime(by: .seconds(3))
        #expect(channel.isActive)
        try receive(channel, " / H")
        loop.advanceTime(by: .seconds(6))
        #expect(channel.isActive)
        loop.advanceTime(by: .seconds(1))
        #expect(!channel.isActive)
    }

    @Test func anIdleConnectionBetweenRequestsIsNotTimed() throws {
        let channel = try channel()
        try answerOneRequest(channel)
        // No byte of a next head: the header deadline does not apply (the idle timeout does).
        loop.advanceTime(by: .seconds(60))
        #expect(channel.isActive)
        _ = try channel.finish(acceptAlreadyClosed: true)
    }
}
