import NIOCore
import Testing

@testable import TesseraRESP

@Suite("Redis Cluster routing: hash slots, slot map, redirections, URLs")
struct ClusterRoutingTests {
    @Test func crc16MatchesTheReferenceVector() {
        // CRC-16/XMODEM check value of "123456789".
        #expect(RedisKeySlot.crc16(Array("123456789".utf8)[...]) == 0x31C3)
    }

    @Test func slotsMatchWhatRedisClusterComputes() {
        // Values from CLUSTER KEYSLOT on a real cluster (also checked live in the cluster suite).
        #expect(RedisKeySlot.slot(of: "foo") == 12182)
        #expect(RedisKeySlot.slot(of: "bar") == 5061)
        #expect(RedisKeySlot.slot(of: "hello") == 866)
        #expect(RedisKeySlot.slot(of: "") == 0)
    }

    @Test func hashTagsFollowTheFirstBracePair() {
        #expect(RedisKeySlot.slot(of: "{user1000}.following") == RedisKeySlot.slot(of: "{user1000}.followers"))
        #expect(RedisKeySlot.slot(of: "{user1000}.following") == RedisKeySlot.slot(of: "user1000"))
        // An empty tag does not count: the whole key is hashed.
        #expect(RedisKeySlot.slot(of: "foo{}{bar}") == Int(RedisKeySlot.crc16(Array("foo{}{bar}".utf8)[...]) % 16384))
        // Only up to the first '}' after the first '{'.
        #expect(RedisKeySlot.slot(of: "foo{{bar}}zap") == RedisKeySlot.slot(of: "{bar"))
        #expect(RedisKeySlot.slot(of: "foo{bar}{zap}") == RedisKeySlot.slot(of: "bar"))
        // No closing brace: the whole key.
        #expect(RedisKeySlot.slot(of: "{abc") == Int(RedisKeySlot.crc16(Array("{abc".utf8)[...]) % 16384))
    }

    @Test func commandsRouteByTheirFirstKey() {
        #expect(RedisCommandRouting.routingKey(of: ["GET", "k"])?.description == "k")
        #expect(RedisCommandRouting.routingKey(of: ["MGET", "a", "b"])?.description == "a")
        #expect(RedisCommandRouting.routingKey(of: ["EVALSHA", "abc", "2", "k1", "k2", "arg"])?.description == "k1")
        #expect(RedisCommandRouting.routingKey(of: ["EVAL", "return 1", "0", "arg"]) == nil)
        #expect(RedisCommandRouting.routingKey(of: ["PING"]) == nil)
        #expect(RedisCommandRouting.routingKey(of: ["SCAN", "0", "MATCH", "x"]) == nil)
        #expect(RedisCommandRouting.routingKey(of: ["ping"]) == nil)
    }

    @Test func slotMapIsReadFromClusterSlots() throws {
        func node(_ host: String, _ port: Int, _ id: String) -> RESPValue {
            .array([.bulkString(ByteBuffer(string: host)), .integer(Int64(port)), .bulkString(ByteBuffer(string: id))])
        }
        let reply = RESPValue.array([
            .array([.integer(0), .integer(5460), node("127.0.0.1", 7000, "a"), node("127.0.0.1", 7003, "d")]),
            .array([.integer(5461), .integer(10922), node("", 7001, "b")]),
            .array([.integer(10923), .integer(16383), node("127.0.0.1", 7002, "c"), node("127.0.0.1", 7004, "e")]),
        ])
        var map = try #require(RedisClusterSlotMap(clusterSlots: reply, answeredBy: RedisNodeAddress(host: "10.0.0.9", port: 7001)))
        #expect(map.coveredSlots == 16384)
        #expect(map.primary(forSlot: 0) == RedisNodeAddress(host: "127.0.0.1", port: 7000))
        // An empty host is the node that answered.
        #expect(map.primary(forSlot: 6000) == RedisNodeAddress(host: "10.0.0.9", port: 7001))
        #expect(map.shard(forSlot: 16383)?.replicas == [RedisNodeAddress(host: "127.0.0.1", port: 7004)])
        #expect(map.primaries.count == 3)
        map.assign(slot: 6000, to: RedisNodeAddress(host: "127.0.0.1", port: 7005))
        #expect(map.primary(forSlot: 6000) == RedisNodeAddress(host: "127.0.0.1", port: 7005))
        #expect(map.primary(forSlot: 6001) == RedisNodeAddress(host: "10.0.0.9", port: 7001))
        #expect(map.primaries.count == 4)
        #expect(RedisClusterSlotMap(clusterSlots: .array([.array([.integer(5), .integer(2), node("h", 1, "x")])]), answeredBy: RedisNodeAddress(host: "h", port: 1)) == nil)
    }

    @Test func topologyErrorsAreRecognisedFromTheServerCode() {
        let here = RedisNodeAddress(host: "10.1.1.1", port: 6379)
        #expect(
            RedisTopologyError(RedisError(serverMessage: "MOVED 3999 127.0.0.1:6381"), answeredBy: here)
                == .moved(slot: 3999, to: RedisNodeAddress(host: "127.0.0.1", port: 6381))
        )
        #expect(
            RedisTopologyError(RedisError(serverMessage: "ASK 3999 :6381"), answeredBy: here)
                == .ask(slot: 3999, to: RedisNodeAddress(host: "10.1.1.1", port: 6381))
        )
        #expect(RedisTopologyError(RedisError(serverMessage: "TRYAGAIN Multiple keys request during rehashing of slot"), answeredBy: here) == .tryAgain)
        #expect(RedisTopologyError(RedisError(serverMessage: "CLUSTERDOWN The cluster is down"), answeredBy: here) == .clusterDown)
        #expect(RedisTopologyError(RedisError(serverMessage: "READONLY You can't write against a read only replica."), answeredBy: here) == .readOnly)
        #expect(RedisTopologyError(RedisError(serverMessage: "LOADING Redis is loading the dataset in memory"), answeredBy: here) == .loading)
        #expect(RedisTopologyError(RedisError(serverMessage: "ERR unknown command"), answeredBy: here) == nil)
        #expect(RedisTopologyError(RedisError(serverMessage: "MOVED nonsense"), answeredBy: here) == nil)
        #expect(RedisTopologyError(.connectionClosed, answeredBy: here) == nil)
    }

    @Test func clusterURLsListSeedsAndKeepCredentials() throws {
        guard case .cluster(let configuration, let seeds) = try RedisDeployment(url: "redis-cluster://app:s%40cret@10.0.0.1:7000,10.0.0.2:7001,[::1]:7002")
        else { Issue.record("not a cluster"); return }
        #expect(seeds == [
            RedisNodeAddress(host: "10.0.0.1", port: 7000), RedisNodeAddress(host: "10.0.0.2", port: 7001),
            RedisNodeAddress(host: "::1", port: 7002),
        ])
        #expect(configuration.username == "app")
        #expect(configuration.password == "s@cret")
        #expect(configuration.tls == nil)
        guard case .cluster(let tls, _) = try RedisDeployment(url: "rediss-cluster://h:1?ca_file=/ca.pem") else {
            Issue.record("not a cluster"); return
        }
        #expect(tls.tls?.caFilePath == "/ca.pem")
        #expect(throws: RedisError.self) { try RedisDeployment(url: "redis-cluster://h:1/2") }
        #expect(throws: RedisError.self) { try RedisDeployment(url: "redis-cluster://h:1,,h:2") }
        let description = "\(try RedisDeployment(url: "redis-cluster://app:secret@h:1,h:2"))"
        #expect(description == "redis-cluster://app:***@h:1,h:2")
        #expect(!description.contains("secret"))
    }

    @Test func sentinelURLsNameThePrimaryAfterTheHash() throws {
        guard case .sentinel(let configuration, let sentinels, let name, let user, let password) = try RedisDeployment(
            url: "redis-sentinel://:pw@10.0.0.1,10.0.0.2:26380/3?sentinel_password=sp#my%20primary"
        ) else { Issue.record("not sentinel"); return }
        #expect(sentinels == [RedisNodeAddress(host: "10.0.0.1", port: 26379), RedisNodeAddress(host: "10.0.0.2", port: 26380)])
        #expect(name == "my primary")
        #expect(configuration.password == "pw")
        #expect(configuration.database == 3)
        #expect(user == nil)
        #expect(password == "sp")
        #expect(throws: RedisError.self) { try RedisDeployment(url: "redis-sentinel://h:26379/0") }
        guard case .standalone(let plain) = try RedisDeployment(url: "redis://h:6380/1") else { Issue.record("not standalone"); return }
        #expect(plain.port == 6380)
    }
}
