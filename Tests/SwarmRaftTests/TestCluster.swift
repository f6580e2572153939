@testable import SwarmRaft

/// A tiny synchronous network for unit tests of the core: messages are delivered in order,
/// immediately, unless a link is cut. Persistence is instant and never lost.
struct TestCluster {
    var cores: [RaftID: RaftCore] = [:]
    var applied: [RaftID: [Entry]] = [:]
    var readStates: [RaftID: [ReadState]] = [:]
    var cut: Set<[RaftID]> = []
    var queue: [Message] = []
    /// Messages delivered so far, for assertions.
    var delivered: [Message] = []

    init(_ ids: [RaftID], preVote: Bool = true, checkQuorum: Bool = true, configure: (inout RaftConfig) -> Void = { _ in }) {
        for id in ids {
            var config = RaftConfig(id: id, seed: id)
            config.preVote = preVote
            config.checkQuorum = checkQuorum
            configure(&config)
            cores[id] = RaftCore(config: config, bootstrap: ids)
        }
        settle()
    }

    subscript(id: RaftID) -> RaftCore {
        get { cores[id]! }
        set { cores[id] = newValue }
    }

    /// Handles every Ready and delivers every message until nothing moves.
    mutating func settle(maxRounds: Int = 1000) {
        for _ in 0..<maxRounds {
            var moved = false
            for id in cores.keys.sorted() where cores[id]!.hasReady {
                moved = true
                var core = cores[id]!
                let rd = core.ready()
                queue.append(contentsOf: rd.messages)
                applied[id, default: []].append(contentsOf: rd.committedEntries)
                readStates[id, default: []].append(contentsOf: rd.readStates)
                core.advance(rd)
                cores[id] = core
            }
            while !queue.isEmpty {
                moved = true
                let m = queue.removeFirst()
                if cut.contains([m.from, m.to]) || cores[m.to] == nil { continue }
                delivered.append(m)
                cores[m.to]!.step(m)
            }
            if !moved { return }
        }
    }

    /// Ticks `id` until its election timeout fires (at most 2 × election tick).
    mutating func campaign(_ id: RaftID) {
        for _ in 0..<(2 * cores[id]!.config.electionTick) {
            cores[id]!.tick()
            if cores[id]!.role != .follower { break }
        }
        settle()
    }

    mutating func tickAll(_ n: Int) {
        for _ in 0..<n {
            for id in cores.keys.sorted() { cores[id]!.tick() }
            settle()
        }
    }

    mutating func isolate(_ id: RaftID) {
        for other in cores.keys where other != id {
            cut.insert([id, other])
            cut.insert([other, id])
        }
    }

    mutating func heal() { cut = [] }

    /// Ticks everyone until a member other than `old` leads; returns it.
    mutating func electOther(than old: RaftID) -> RaftID? {
        for _ in 0..<100 {
            tickAll(1)
            if let l = cores.keys.sorted().first(where: { $0 != old && cores[$0]!.role == .leader }) { return l }
        }
        return nil
    }

    var leader: RaftID? { cores.keys.sorted().first { cores[$0]!.role == .leader } }

    func appliedData(_ id: RaftID) -> [[UInt8]] {
        (applied[id] ?? []).filter { $0.type == .normal && !$0.data.isEmpty }.map(\.data)
    }
}
