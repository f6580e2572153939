import SwarmRaft
import SwarmRandom

/// Knobs of one seeded simulation run.
public struct SimulationOptions: Sendable {
    public var seed: UInt64
    /// Members in the cluster, 3 to 5.
    public var nodes: Int = 3
    /// Simulation steps of the faulty phase. A node ticks every 8 to 14 steps.
    public var steps: Int = 3000
    public var dropRate: Double = 0.05
    public var duplicateRate: Double = 0.02
    /// Messages take 1 to `maxDelay` steps, so they are also reordered.
    public var maxDelay: Int = 6
    public var partitions = true
    public var crashes = true
    /// Add learners, promote them and remove voters while the cluster runs.
    public var membershipChanges = false
    public var leadershipTransfers = true
    public var clients = 3
    public var keys = 2
    /// Take a snapshot and compact every this many applied entries.
    public var snapshotEvery: UInt64 = 25

    public init(seed: UInt64) { self.seed = seed }

    /// A varied configuration derived from the seed, as the CI sweep uses.
    public static func derived(from seed: UInt64) -> SimulationOptions {
        var rng = SplitMix64(seed: seed ^ 0x5EED)
        var o = SimulationOptions(seed: seed)
        o.nodes = 3 + Int(rng.next() % 3)
        o.dropRate = [0.0, 0.03, 0.1][Int(rng.next() % 3)]
        o.duplicateRate = [0.0, 0.02, 0.05][Int(rng.next() % 3)]
        o.maxDelay = 2 + Int(rng.next() % 8)
        o.membershipChanges = rng.next() % 3 == 0
        o.snapshotEvery = [10, 25, 60][Int(rng.next() % 3)]
        return o
    }
}

/// The outcome of a run: safety violations (empty when all is well) and statistics.
public struct SimulationReport: Sendable {
    public var seed: UInt64
    public var violations: [String] = []
    public var history: [KVOperation] = []
    public var committedWrites = 0
    public var completedReads = 0
    public var elections = 0
    public var crashes = 0
    public var snapshotsSent = 0
    public var finalIndex: UInt64 = 0

    public var passed: Bool { violations.isEmpty }
}

/// A seeded, deterministic simulation of a Raft cluster under message loss, delay,
/// duplication and reordering, partitions (symmetric and one-way), crashes that lose
/// unsynced writes, uneven ticking, membership changes and leadership transfers. Clients
/// run a key-value workload whose history is checked for linearizability; every applied
/// index is checked to hold the same entry on every member (state machine safety) and
/// every term to have at most one leader (election safety).
public struct RaftSimulation {
    struct InFlight {
        var at: Int
        var seq: Int
        var message: Message
    }

    struct Request {
        var id: Int
        var op: KVOperation
        var node: RaftID
        var deadline: Int
    }

    struct Link: Hashable {
        var from: RaftID
        var to: RaftID
    }

    let options: SimulationOptions
    var rng: SplitMix64
    var now = 0
    var clock = 0
    var nodes: [RaftID: SimulatedNode] = [:]
    var network: [InFlight] = []
    var messageSeq = 0
    var blocked: Set<Link> = []
    var healAt = 0
    var restartAt: [RaftID: Int] = [:]
    var removed: Set<RaftID> = []
    var retiring: Set<RaftID> = []
    var requests: [Int: Request] = [:]
    var nextRequest = 1
    var clientBusy: [Int: Bool] = [:]
    var leaderHint: [Int: RaftID] = [:]
    var clientSeq: [Int: Int] = [:]
    var appliedLog: [UInt64: (term: UInt64, data: [UInt8])] = [:]
    var leaders: [UInt64: RaftID] = [:]
    var report: SimulationReport
    var faultsEnabled = true

    public init(options: SimulationOptions) {
        self.options = options
        rng = SplitMix64(seed: options.seed)
        report = SimulationReport(seed: options.seed)
        let all = (1...RaftID(options.nodes)).map { $0 }
        let initial = options.membershipChanges ? Array(all.prefix(3)) : all
        for id in all {
            let period = 8 + Int(rng.next() % 7)
            nodes[id] = SimulatedNode(id: id, tickPeriod: period, nextTick: Int(rng.next() % UInt64(period)) + 1)
            start(id, bootstrap: initial.contains(id) ? initial : [])
        }
        for c in 0..<options.clients { clientBusy[c] = false; clientSeq[c] = 0 }
    }

    mutating func start(_ id: RaftID, bootstrap: [RaftID]) {
        var config = RaftConfig(id: id, seed: options.seed &* 1_000_003 &+ id &+ rng.next())
        config.maxInflightMessages = 4
        config.maxSizePerMessage = 256
        config.snapshotTimeoutTicks = 30
        var node = nodes[id]!
        node.core = RaftCore(config: config, recovered: node.disk.recovered, bootstrap: bootstrap)
        node.sm = node.disk.snapshot.isEmpty ? KVStateMachine() : KVStateMachine.decode(node.disk.snapshot.data)
        node.unsyncedHardState = nil
        node.waitingApply = [:]
        node.waitingReadIndex = [:]
        node.waitingReads = []
        nodes[id] = node
    }

    func chance(_ p: Double, _ rng: inout SplitMix64) -> Bool {
        Double(rng.next() % 1_000_000) / 1_000_000 < p
    }

    mutating func roll(_ p: Double) -> Bool { chance(p, &rng) }

    mutating func pick<T>(_ items: [T]) -> T? {
        items.isEmpty ? nil : items[Int(rng.next() % UInt64(items.count))]
    }

    mutating func stamp() -> Int {
        clock += 1
        return clock
    }

    // MARK: Running

    /// Runs the faulty phase, then heals everything and checks that the cluster recovers,
    /// converges and accepts a final write.
    public mutating func run() -> SimulationReport {
        for _ in 0..<options.steps { step() }
        faultsEnabled = false
        blocked = []
        for id in nodes.keys.sorted() where nodes[id]!.core == nil && !removed.contains(id) {
            start(id, bootstrap: [])
        }
        // Let the cluster settle, then require a final write to commit everywhere.
        let settleUntil = now + 1500
        var finalRequest: Int?
        while now < settleUntil {
            step()
            if finalRequest == nil, let leader = currentLeader(), now > settleUntil - 1200 {
                finalRequest = issue(client: options.clients, node: leader, kind: 0, forcedKey: "final")
            }
            if let f = finalRequest, requests[f] == nil, converged() { break }
        }
        if let f = finalRequest, requests[f] != nil {
            violations("liveness: the final write did not commit within 1500 steps after healing: \(stateSummary())")
        } else if finalRequest == nil {
            violations("liveness: no leader within 300 steps after healing: \(stateSummary())")
        }
        if !converged() { violations("convergence: members disagree on state after healing: \(stateSummary())") }
        let result = checkLinearizability(report.history)
        if !result.isLinearizable {
            violations("linearizability: history of key \(result.failingKey ?? "?") has no linearization: "
                       + result.failingOperations.map(\.description).joined(separator: "; "))
        }
        report.finalIndex = nodes.values.compactMap { $0.core?.commitIndex }.max() ?? 0
        return report
    }

    mutating func violations(_ text: String) {
        report.violations.append("seed \(options.seed) at step \(now): \(text)")
    }

    func currentLeader() -> RaftID? {
        nodes.keys.sorted().first { nodes[$0]!.core?.role == .leader }
    }

    func converged() -> Bool {
        let live = nodes.values.filter { $0.isUp && !removed.contains($0.id) && $0.core!.confState.contains($0.id) }
        guard let first = live.first else { return false }
        return live.allSatisfy { $0.sm == first.sm && $0.core!.appliedIndex == first.core!.appliedIndex }
    }

    func stateSummary() -> String {
        nodes.keys.sorted().map { id in
            let n = nodes[id]!
            guard let c = n.core else { return "\(id): down" }
            return "\(id): \(c.role) term \(c.term) commit \(c.commitIndex) applied \(n.sm.applied) voters \(c.confState.voters)"
        }.joined(separator: ", ")
    }

    mutating func step() {
        now += 1
        if faultsEnabled { injectFaults() }
        deliver()
        for id in nodes.keys.sorted() where nodes[id]!.isUp && now >= nodes[id]!.nextTick {
            nodes[id]!.core!.tick()
            nodes[id]!.nextTick = now + nodes[id]!.tickPeriod + Int(rng.next() % 5) - 2
        }
        if faultsEnabled { driveClients() }
        expireRequests()
        for id in nodes.keys.sorted() { processReady(id) }
    }
}
