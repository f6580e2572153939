import SwarmTesting
import Testing

/// The checker must accept linearizable histories and flag the others; otherwise a clean
/// simulation sweep would prove nothing.
@Suite struct LinearizabilityCheckerTests {
    typealias Op = KVOperation

    @Test func acceptsSequentialHistory() {
        let h = [
            Op(client: 1, input: .put(key: "x", value: "1"), call: 1, ret: 2),
            Op(client: 2, input: .get(key: "x"), output: "1", call: 3, ret: 4),
        ]
        #expect(checkLinearizability(h).isLinearizable)
    }

    @Test func acceptsConcurrentReadOfEitherValue() {
        let h = [
            Op(client: 1, input: .put(key: "x", value: "1"), call: 1, ret: 10),
            Op(client: 2, input: .get(key: "x"), output: nil, call: 2, ret: 3),
            Op(client: 3, input: .get(key: "x"), output: "1", call: 4, ret: 5),
        ]
        #expect(checkLinearizability(h).isLinearizable)
    }

    @Test func flagsStaleRead() {
        // The put finished before the get started, yet the get saw the old value.
        let h = [
            Op(client: 1, input: .put(key: "x", value: "1"), call: 1, ret: 2),
            Op(client: 1, input: .put(key: "x", value: "2"), call: 3, ret: 4),
            Op(client: 2, input: .get(key: "x"), output: "1", call: 5, ret: 6),
        ]
        let result = checkLinearizability(h)
        #expect(!result.isLinearizable)
        #expect(result.failingKey == "x")
    }

    @Test func flagsReadsThatGoBackInTime() {
        let h = [
            Op(client: 1, input: .put(key: "x", value: "1"), call: 1, ret: 20),
            Op(client: 2, input: .get(key: "x"), output: "1", call: 2, ret: 3),
            Op(client: 3, input: .get(key: "x"), output: nil, call: 4, ret: 5),
        ]
        #expect(!checkLinearizability(h).isLinearizable)
    }

    @Test func unfinishedPutMayOrMayNotTakeEffect() {
        let took = [
            Op(client: 1, input: .put(key: "x", value: "1"), call: 1, ret: .max),
            Op(client: 2, input: .get(key: "x"), output: "1", call: 5, ret: 6),
        ]
        let didNot = [
            Op(client: 1, input: .put(key: "x", value: "1"), call: 1, ret: .max),
            Op(client: 2, input: .get(key: "x"), output: nil, call: 5, ret: 6),
        ]
        #expect(checkLinearizability(took).isLinearizable)
        #expect(checkLinearizability(didNot).isLinearizable)
        // ...but it cannot take effect before it was called.
        let tooEarly = [
            Op(client: 2, input: .get(key: "x"), output: "1", call: 1, ret: 2),
            Op(client: 1, input: .put(key: "x", value: "1"), call: 3, ret: .max),
        ]
        #expect(!checkLinearizability(tooEarly).isLinearizable)
    }

    @Test func keysAreIndependent() {
        let h = [
            Op(client: 1, input: .put(key: "x", value: "1"), call: 1, ret: 2),
            Op(client: 2, input: .get(key: "y"), output: nil, call: 3, ret: 4),
            Op(client: 2, input: .get(key: "x"), output: "2", call: 5, ret: 6),
        ]
        let result = checkLinearizability(h)
        #expect(!result.isLinearizable && result.failingKey == "x")
    }
}
