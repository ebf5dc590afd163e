import Tessera
@testable import TesseraPostgres
import Testing

/// Which PostgreSQL failures are an outage, which are worth a retry, and which are faults.
@Suite("PostgreSQL failure kinds")
struct PostgresFailureKindTests {
    @Test(arguments: [
        (nil, StoreError.Kind.unavailable),  // no answer at all: refused, timed out, pool exhausted
        ("08006", .unavailable),  // connection failure
        ("57P01", .unavailable),  // admin shutdown
        ("53300", .overloaded),  // too many connections
        ("40001", .overloaded),  // serialization failure
        ("40P01", .overloaded),  // deadlock detected
        ("23505", .failed),  // unique violation the store did not expect
        ("42P01", .failed),  // undefined table
    ] as [(String?, StoreError.Kind)])
    func sqlStatesAreClassedByWhatARetryWouldDo(state: String?, expected: StoreError.Kind) {
        #expect(PostgresDatabase.kind(ofSQLState: state) == expected)
    }
}
