import Testing

@testable import TesseraRESP

@Suite("Redis URL parsing")
struct ConfigurationTests {
    @Test("defaults and full URLs")
    func parsing() throws {
        let plain = try RedisConfiguration(url: "redis://localhost")
        #expect(plain.host == "localhost")
        #expect(plain.port == 6379)
        #expect(plain.database == 0)
        #expect(plain.username == nil && plain.password == nil && plain.tls == nil)

        let full = try RedisConfiguration(url: "redis://app:p%40ss%2Fword@cache.internal:6380/3")
        #expect(full.username == "app")
        #expect(full.password == "p@ss/word")
        #expect(full.host == "cache.internal")
        #expect(full.port == 6380)
        #expect(full.database == 3)

        let passwordOnly = try RedisConfiguration(url: "redis://:secret@10.0.0.1")
        #expect(passwordOnly.username == nil)
        #expect(passwordOnly.password == "secret")

        let tls = try RedisConfiguration(url: "rediss://user:pw@redis.example.com/1?ca_file=/etc/ca.pem")
        #expect(tls.tls == RedisConfiguration.TLS(caFilePath: "/etc/ca.pem"))
        #expect(tls.database == 1)

        let ipv6 = try RedisConfiguration(url: "redis://[::1]:7000")
        #expect(ipv6.host == "::1")
        #expect(ipv6.port == 7000)

        let trailingSlash = try RedisConfiguration(url: "redis://h:1/")
        #expect(trailingSlash.database == 0)
        #expect(try RedisConfiguration(url: "redis://h?protocol=2").protocolVersion == .resp2)
    }

    @Test("bad URLs are rejected without echoing the password")
    func rejection() {
        let bad = [
            "http://h", "redis://", "redis://:pw@", "redis://h:0", "redis://h:70000", "redis://h:abc",
            "redis://h/x", "redis://h/-1", "redis://u:hunter%2@h", "redis://h?nope=1", "redis://[::1",
            "redis://a:b:c", "redis://h?ca_file=/x", "redis://h?protocol=4",
        ]
        for url in bad {
            do {
                _ = try RedisConfiguration(url: url)
                Issue.record("\(url) should be rejected")
            } catch {
                guard case .invalidConfiguration(let message) = error else {
                    Issue.record("\(url): \(error)")
                    continue
                }
                #expect(!message.contains("hunter"), "\(message)")
            }
        }
        let configuration = try? RedisConfiguration(url: "redis://u:topsecret@h:1/2")
        #expect(configuration?.description == "redis://u:***@h:1/2")
    }
}
