import SwarmRaft

/// What a simulated disk holds. Writes first land in a volatile buffer and become durable
/// only on fsync; a crash loses the buffer.
public struct SimulatedDisk: Sendable {
    public var hardState = HardState()
    public var snapshot = Snapshot()
    public var entries: [Entry] = []

    mutating func write(entries new: [Entry]) {
        guard let first = new.first else { return }
        entries.removeAll { $0.index >= first.index }
        entries.append(contentsOf: new)
    }

    mutating func write(snapshot snap: Snapshot) {
        snapshot = snap
        entries.removeAll { $0.index <= snap.metadata.index }
    }

    mutating func compact(through index: UInt64) {
        entries.removeAll { $0.index <= index }
    }

    var recovered: RecoveredState {
        RecoveredState(hardState: hardState, snapshot: snapshot, entries: entries)
    }
}

/// A key-value state machine whose commands are log entries.
public struct KVStateMachine: Sendable, Equatable {
    public var values: [String: String] = [:]
    public var applied: UInt64 = 0

    /// Applies one command; returns the value read for a get.
    mutating func apply(_ command: KVCommand) -> String? {
        switch command.kind {
        case .put:
            values[command.key] = command.value
            return nil
        case .get:
            return values[command.key]
        }
    }

    func encoded() -> [UInt8] {
        var out = "\(applied)"
        for key in values.keys.sorted() { out += "\n\(key)=\(values[key]!)" }
        return Array(out.utf8)
    }

    static func decode(_ bytes: [UInt8]) -> KVStateMachine {
        var sm = KVStateMachine()
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        sm.applied = UInt64(lines.first ?? "0") ?? 0
        for line in lines.dropFirst() {
            let parts = line.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { sm.values[String(parts[0])] = String(parts[1]) }
        }
        return sm
    }
}

/// A client command carried in a log entry.
public struct KVCommand: Sendable, Equatable {
    public enum Kind: String, Sendable { case put = "P", get = "G" }
    public var kind: Kind
    public var client: Int
    public var seq: Int
    public var key: String
    public var value: String

    func encoded() -> [UInt8] { Array("\(kind.rawValue)|\(client)|\(seq)|\(key)|\(value)".utf8) }

    static func decode(_ bytes: [UInt8]) -> KVCommand? {
        let parts = String(decoding: bytes, as: UTF8.self).split(separator: "|", omittingEmptySubsequences: false)
        guard parts.count == 5, let kind = Kind(rawValue: String(parts[0])),
              let client = Int(parts[1]), let seq = Int(parts[2]) else { return nil }
        return KVCommand(kind: kind, client: client, seq: seq, key: String(parts[3]), value: String(parts[4]))
    }
}

/// One member of the simulated cluster: a core, its disk and its state machine.
struct SimulatedNode {
    let id: RaftID
    var core: RaftCore?
    var disk = SimulatedDisk()
    /// A hard state written without fsync (commit-only changes); lost in a crash.
    var unsyncedHardState: HardState?
    var sm = KVStateMachine()
    /// Ticks are uneven: each node has its own period, in simulation steps.
    var tickPeriod: Int
    var nextTick: Int
    /// Client requests waiting for an index to be applied: index -> (term, request id).
    var waitingApply: [UInt64: [(term: UInt64, request: Int)]] = [:]
    /// ReadIndex requests: context -> request id, then index -> request ids once known.
    var waitingReadIndex: [[UInt8]: Int] = [:]
    var waitingReads: [(index: UInt64, request: Int)] = []

    var isUp: Bool { core != nil }
}
