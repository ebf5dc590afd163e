import NIOCore
import Testing

@testable import TesseraRESP

@Suite("Sentinel: which primary to follow when the Sentinels disagree")
struct SentinelPrimaryChoiceTests {
    typealias Report = SentinelPrimaryChoice.Report
    let old = RedisNodeAddress(host: "127.0.0.1", port: 7001)
    let new = RedisNodeAddress(host: "127.0.0.1", port: 7002)
    let other = RedisNodeAddress(host: "127.0.0.1", port: 7003)

    @Test func theNewestEpochWinsEvenWhenMostSentinelsStillNameTheOldPrimary() {
        // The first two Sentinels have not heard of the failover yet.
        let choice = SentinelPrimaryChoice([
            Report(address: old, configEpoch: 3), Report(address: old, configEpoch: 3), Report(address: new, configEpoch: 4),
        ])
        #expect(choice.primary == new)
        #expect(choice.configEpoch == 4)
    }

    @Test func equalEpochsGoToTheAddressMostSentinelsName() {
        let choice = SentinelPrimaryChoice([
            Report(address: other, configEpoch: 2), Report(address: new, configEpoch: 2), Report(address: new, configEpoch: 2),
        ])
        #expect(choice.primary == new)
    }

    @Test func aTieOfCountsGoesToTheFirstAnswer() {
        #expect(SentinelPrimaryChoice([Report(address: new, configEpoch: 1), Report(address: old, configEpoch: 1)]).primary == new)
        #expect(SentinelPrimaryChoice([Report(address: old, configEpoch: 1), Report(address: new, configEpoch: 1)]).primary == old)
    }

    @Test func noAnswerNoPrimary() {
        #expect(SentinelPrimaryChoice().primary == nil)
        #expect(SentinelPrimaryChoice().configEpoch == nil)
    }

    @Test func readsSentinelMasterInBothProtocols() throws {
        func bulk(_ text: String) -> RESPValue { .bulkString(ByteBuffer(string: text)) }
        let fields = [("name", "tessera"), ("ip", "127.0.0.1"), ("port", "7002"), ("flags", "master"), ("config-epoch", "4")]
        let resp2 = RESPValue.array(fields.flatMap { [bulk($0.0), bulk($0.1)] })
        let resp3 = RESPValue.map(Dictionary(uniqueKeysWithValues: fields.map { (bulk($0.0), bulk($0.1)) }))
        for reply in [resp2, resp3] {
            let report = try #require(Report(sentinelMaster: reply))
            #expect(report == Report(address: new, configEpoch: 4))
        }
    }

    @Test(arguments: [
        ["ip": "127.0.0.1", "port": "7002"],  // no epoch
        ["ip": "", "port": "7002", "config-epoch": "1"],
        ["ip": "127.0.0.1", "port": "0", "config-epoch": "1"],
        ["ip": "127.0.0.1", "port": "seven", "config-epoch": "1"],
        ["ip": "127.0.0.1", "port": "7002", "config-epoch": "x"],
    ])
    func incompleteAnswersAreIgnored(_ fields: [String: String]) {
        let reply = RESPValue.map(
            Dictionary(uniqueKeysWithValues: fields.map { (RESPValue.bulkString(ByteBuffer(string: $0.key)), RESPValue.bulkString(ByteBuffer(string: $0.value))) })
        )
        #expect(Report(sentinelMaster: reply) == nil)
    }
}
