import Foundation
import Testing

@testable import TesseraServer

/// The integer RFC 3339 writer gives exactly what Foundation's `.iso8601` style gives.
@Suite struct TimestampTests {
    func foundation(_ date: Date) -> String {
        Date(timeIntervalSince1970: date.timeIntervalSince1970.rounded(.down)).formatted(.iso8601)
    }

    @Test func edgesOfDaysMonthsAndLeapYears() {
        let dates = [
            "1970-01-01T00:00:00Z", "1999-12-31T23:59:59Z", "2000-02-29T12:00:00Z", "2000-03-01T00:00:00Z",
            "2024-02-29T23:59:59Z", "2026-12-03T16:26:24Z", "2100-02-28T23:59:59Z", "2100-03-01T00:00:00Z",
            "1969-12-31T23:59:59Z", "1900-01-01T00:00:00Z",
        ]
        for text in dates {
            let date = try? Date(text, strategy: .iso8601)
            #expect(date.map(Timestamp.string) == text)
        }
        // Fractions are cut, not rounded.
        #expect(Timestamp.string(Date(timeIntervalSince1970: 59.999)) == "1970-01-01T00:00:59Z")
    }

    @Test func agreesWithFoundationAcrossTwoCenturies() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let date = Date(timeIntervalSince1970: Double.random(in: -2_208_988_800...7_258_118_400, using: &generator))
            #expect(Timestamp.string(date) == foundation(date))
        }
    }
}
