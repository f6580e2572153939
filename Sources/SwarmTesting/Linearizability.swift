/// One operation of a key-value history, as a client saw it.
public struct KVOperation: Sendable, Equatable, CustomStringConvertible {
    public enum Input: Sendable, Equatable {
        case put(key: String, value: String)
        case get(key: String)

        public var key: String {
            switch self {
            case .put(let key, _), .get(let key): return key
            }
        }
    }

    public var client: Int
    public var input: Input
    /// For a get: the value read (nil if the key was absent). Unused for a put.
    public var output: String?
    /// When the client invoked the operation.
    public var call: Int
    /// When the client saw the result; `Int.max` if it never did (the effect is unknown).
    public var ret: Int

    public init(client: Int, input: Input, output: String? = nil, call: Int, ret: Int) {
        self.client = client
        self.input = input
        self.output = output
        self.call = call
        self.ret = ret
    }

    public var description: String {
        let r = ret == .max ? "?" : String(ret)
        switch input {
        case .put(let k, let v): return "c\(client) put(\(k), \(v)) [\(call), \(r)]"
        case .get(let k): return "c\(client) get(\(k)) -> \(output ?? "nil") [\(call), \(r)]"
        }
    }
}

/// The verdict of ``checkLinearizability(_:)``.
public struct LinearizabilityResult: Sendable {
    /// Whether every key's history has a linearization.
    public var isLinearizable: Bool
    /// The key whose history has none, with its operations.
    public var failingKey: String?
    public var failingOperations: [KVOperation] = []
}

/// Checks a key-value register history for linearizability with the Wing–Gong algorithm as
/// improved by Lowe (memoising linearized sets with the state they lead to), the approach of
/// Porcupine. Keys are independent registers, so each key is checked on its own.
///
/// Gets that never returned must be left out by the caller (they have no effect); puts
/// that never returned are kept with `ret == Int.max` and may be linearized anywhere after
/// their call, or effectively never.
public func checkLinearizability(_ history: [KVOperation]) -> LinearizabilityResult {
    var byKey: [String: [KVOperation]] = [:]
    for op in history { byKey[op.input.key, default: []].append(op) }
    for key in byKey.keys.sorted() {
        let ops = byKey[key]!
        var checker = RegisterChecker(ops)
        if !checker.check() {
            return LinearizabilityResult(isLinearizable: false, failingKey: key, failingOperations: ops)
        }
    }
    return LinearizabilityResult(isLinearizable: true)
}

/// Wing–Gong–Lowe search over one register's history.
private struct RegisterChecker {
    struct Event {
        var op: Int
        var isCall: Bool
        var time: Int
        var match: Int  // index of the partner event
        var prev: Int
        var next: Int
    }

    struct CacheKey: Hashable {
        var bits: [UInt64]
        var state: String?
    }

    let ops: [KVOperation]
    var events: [Event] = []
    let head: Int

    init(_ ops: [KVOperation]) {
        self.ops = ops
        var raw: [(time: Int, isCall: Bool, op: Int)] = []
        for (k, op) in ops.enumerated() {
            raw.append((op.call, true, k))
            raw.append((op.ret, false, k))
        }
        // Calls sort before returns at equal times: such operations count as concurrent,
        // which can only make the check more permissive, never report a false violation.
        raw.sort { a, b in a.time != b.time ? a.time < b.time : (a.isCall && !b.isCall) }
        // Event 0 is the list head.
        events.append(Event(op: -1, isCall: false, time: .min, match: -1, prev: -1, next: 1))
        var callIndex = [Int](repeating: 0, count: ops.count)
        for (k, r) in raw.enumerated() {
            let idx = k + 1
            events.append(Event(op: r.op, isCall: r.isCall, time: r.time, match: -1, prev: idx - 1,
                                next: k + 1 < raw.count ? idx + 1 : -1))
            if r.isCall {
                callIndex[r.op] = idx
            } else {
                events[idx].match = callIndex[r.op]
                events[callIndex[r.op]].match = idx
            }
        }
        if raw.isEmpty { events[0].next = -1 }
        head = 0
    }

    static func step(_ state: String?, _ op: KVOperation) -> (Bool, String?) {
        switch op.input {
        case .put(_, let value): return (true, value)
        case .get: return (op.output == state, state)
        }
    }

    mutating func lift(_ call: Int) {
        let ret = events[call].match
        events[events[call].prev].next = events[call].next
        if events[call].next >= 0 { events[events[call].next].prev = events[call].prev }
        events[events[ret].prev].next = events[ret].next
        if events[ret].next >= 0 { events[events[ret].next].prev = events[ret].prev }
    }

    mutating func unlift(_ call: Int) {
        let ret = events[call].match
        events[events[ret].prev].next = ret
        if events[ret].next >= 0 { events[events[ret].next].prev = ret }
        events[events[call].prev].next = call
        if events[call].next >= 0 { events[events[call].next].prev = call }
    }

    mutating func check() -> Bool {
        var bits = [UInt64](repeating: 0, count: (ops.count + 63) / 64)
        var state: String? = nil
        var cache: Set<CacheKey> = []
        var stack: [(call: Int, state: String?)] = []
        var entry = events[head].next
        while events[head].next >= 0 {
            let e = events[entry]
            if e.isCall {
                let (ok, next) = Self.step(state, ops[e.op])
                if ok {
                    var newBits = bits
                    newBits[e.op / 64] |= 1 << UInt64(e.op % 64)
                    if cache.insert(CacheKey(bits: newBits, state: next)).inserted {
                        stack.append((entry, state))
                        state = next
                        bits = newBits
                        lift(entry)
                        entry = events[head].next
                        continue
                    }
                }
                entry = e.next
            } else {
                // A return was reached before its call could be linearized: backtrack.
                guard let top = stack.popLast() else { return false }
                state = top.state
                let op = events[top.call].op
                bits[op / 64] &= ~(1 << UInt64(op % 64))
                unlift(top.call)
                entry = events[top.call].next
            }
        }
        return true
    }
}
