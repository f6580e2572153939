import SwarmRaft
import SwarmRandom

extension RaftSimulation {
    // MARK: Faults

    mutating func injectFaults() {
        let ids = nodes.keys.sorted().filter { !removed.contains($0) }
        if options.partitions {
            if !blocked.isEmpty && now >= healAt { blocked = [] }
            if blocked.isEmpty && roll(0.003) {
                if roll(0.5) {
                    // Symmetric: split the members into two sides.
                    var side: [RaftID] = []
                    for id in ids where roll(0.5) { side.append(id) }
                    for a in side { for b in ids where !side.contains(b) {
                        blocked.insert(Link(from: a, to: b))
                        blocked.insert(Link(from: b, to: a))
                    } }
                } else if let a = pick(ids), let b = pick(ids.filter { $0 != a }) {
                    // Asymmetric: a can no longer reach b, but b still reaches a.
                    blocked.insert(Link(from: a, to: b))
                    if roll(0.5), let c = pick(ids.filter { $0 != a && $0 != b }) {
                        blocked.insert(Link(from: a, to: c))
                    }
                }
                healAt = now + 100 + Int(rng.next() % 400)
            }
        }
        if options.crashes {
            for (id, at) in restartAt.sorted(by: { $0.key < $1.key }) where now >= at {
                restartAt[id] = nil
                if !removed.contains(id) { start(id, bootstrap: []) }
            }
            if roll(0.0015), let victim = pick(ids.filter { nodes[$0]!.isUp }) {
                crash(victim)
            }
        }
        if options.leadershipTransfers, roll(0.001), let leader = currentLeader(),
           let target = pick(nodes[leader]!.core!.confState.voters.filter({ $0 != leader })) {
            nodes[leader]!.core!.transferLeadership(to: target)
        }
        if options.membershipChanges, roll(0.002) { changeMembership() }
    }

    mutating func crash(_ id: RaftID) {
        nodes[id]!.core = nil
        report.crashes += 1
        restartAt[id] = now + 50 + Int(rng.next() % 300)
    }

    mutating func changeMembership() {
        guard let leader = currentLeader() else { return }
        let conf = nodes[leader]!.core!.confState
        let outsiders = nodes.keys.sorted().filter { !conf.contains($0) && !removed.contains($0) }
        var change: ConfChange?
        if let learner = conf.learners.first {
            change = ConfChange(kind: .addVoter, id: learner)
        } else if let newcomer = outsiders.first {
            change = ConfChange(kind: .addLearner, id: newcomer)
        } else if conf.voters.count > 3, let victim = pick(conf.voters) {
            change = ConfChange(kind: .remove, id: victim)
        }
        guard let change else { return }
        _ = try? nodes[leader]!.core!.proposeConfChange(change)
    }

    // MARK: Network

    mutating func enqueue(_ m: Message) {
        if blocked.contains(Link(from: m.from, to: m.to)) { return }
        if faultsEnabled && roll(options.dropRate) { return }
        let copies = faultsEnabled && roll(options.duplicateRate) ? 2 : 1
        for _ in 0..<copies {
            messageSeq += 1
            network.append(InFlight(at: now + 1 + Int(rng.next() % UInt64(options.maxDelay)), seq: messageSeq, message: m))
        }
    }

    mutating func deliver() {
        var due: [InFlight] = []
        network.removeAll { f in
            if f.at <= now { due.append(f); return true }
            return false
        }
        due.sort { ($0.at, $0.seq) < ($1.at, $1.seq) }
        for f in due {
            let m = f.message
            guard nodes[m.to]?.isUp == true, !blocked.contains(Link(from: m.from, to: m.to)) else { continue }
            if m.type == .snapshot { report.snapshotsSent += 1 }
            nodes[m.to]!.core!.step(m)
        }
    }

    // MARK: Ready handling

    mutating func processReady(_ id: RaftID) {
        var guardCount = 0
        while let core = nodes[id]?.core, core.hasReady, guardCount < 10 {
            guardCount += 1
            var node = nodes[id]!
            var rd = node.core!.ready()
            if node.core!.role == .leader {
                let term = node.core!.term
                if let other = leaders[term], other != id {
                    violations("election safety: \(other) and \(id) both lead term \(term)")
                } else if leaders[term] == nil {
                    leaders[term] = id
                    report.elections += 1
                }
            }
            // A crash before the fsync loses this Ready's writes, and nothing is sent.
            if faultsEnabled && options.crashes && rd.mustSync && roll(0.001) {
                crash(id)
                return
            }
            if let snap = rd.snapshot { node.disk.write(snapshot: snap) }
            node.disk.write(entries: rd.entries)
            if let hs = rd.hardState {
                // A commit-only change is written without fsync: a crash may lose it
                // unless a later synced write carries it.
                if rd.mustSync { node.disk.hardState = hs } else { node.unsyncedHardState = hs }
            }
            if rd.mustSync, rd.hardState == nil, let hs = node.unsyncedHardState {
                node.disk.hardState = hs
            }
            if rd.mustSync { node.unsyncedHardState = nil }
            nodes[id] = node
            for m in rd.messages { enqueue(m) }
            if let snap = rd.snapshot {
                nodes[id]!.sm = KVStateMachine.decode(snap.data)
            }
            for entry in rd.committedEntries { apply(entry, at: id) }
            for rs in rd.readStates {
                if let request = nodes[id]!.waitingReadIndex.removeValue(forKey: rs.context) {
                    nodes[id]!.waitingReads.append((rs.index, request))
                }
            }
            rd.notices = []
            nodes[id]!.core!.advance(rd)
            serveReads(id)
            for victim in retiring.sorted() where victim != id || nodes[id]!.core?.role != .leader {
                // A removed member shuts down once the removal is committed.
                nodes[victim]!.core = nil
                retiring.remove(victim)
            }
            maybeSnapshot(id)
        }
    }

    mutating func apply(_ entry: Entry, at id: RaftID) {
        if let seen = appliedLog[entry.index] {
            if seen.term != entry.term || seen.data != entry.data {
                violations("state machine safety: index \(entry.index) applied as term \(seen.term) and term \(entry.term) (at \(id))")
            }
        } else {
            appliedLog[entry.index] = (entry.term, entry.data)
        }
        var result: String?
        if entry.type == .confChange, let change = try? ConfChange(decoding: entry.data), change.kind == .remove {
            // Once removed, a member is retired for good (IDs are never reused).
            if removed.insert(change.id).inserted { retiring.insert(change.id) }
        }
        if entry.type == .normal, let cmd = KVCommand.decode(entry.data) {
            result = nodes[id]!.sm.apply(cmd)
        }
        nodes[id]!.sm.applied = entry.index
        guard let waiters = nodes[id]!.waitingApply.removeValue(forKey: entry.index) else { return }
        for w in waiters {
            guard var request = requests[w.request] else { continue }
            if w.term == entry.term {
                request.op.output = result
                complete(&request)
            } else {
                // Another entry won this index: the proposal was never committed.
                requests[w.request] = nil
                clientBusy[request.op.client] = false
            }
        }
    }

    mutating func serveReads(_ id: RaftID) {
        let applied = nodes[id]!.sm.applied
        let ready = nodes[id]!.waitingReads.filter { $0.index <= applied }
        nodes[id]!.waitingReads.removeAll { $0.index <= applied }
        for r in ready {
            guard var request = requests[r.request] else { continue }
            request.op.output = nodes[id]!.sm.values[request.op.input.key]
            complete(&request)
        }
    }

    mutating func maybeSnapshot(_ id: RaftID) {
        guard var core = nodes[id]!.core else { return }
        let applied = core.appliedIndex
        guard applied >= core.lastSnapshot.metadata.index + options.snapshotEvery,
              applied == nodes[id]!.sm.applied else { return }
        var sm = nodes[id]!.sm
        sm.applied = applied
        guard let term = nodes[id]!.disk.entries.first(where: { $0.index == applied })?.term else { return }
        let snap = Snapshot(metadata: SnapshotMetadata(index: applied, term: term, confState: core.confState),
                            data: sm.encoded())
        let keep: UInt64 = 5
        let compactTo = applied > keep ? applied - keep : 0
        do {
            try core.compact(snapshot: snap, compactTo: compactTo)
        } catch {
            return
        }
        nodes[id]!.core = core
        nodes[id]!.disk.snapshot = snap
        nodes[id]!.disk.compact(through: compactTo)
    }

    // MARK: Clients

    mutating func driveClients() {
        for client in 0..<options.clients where clientBusy[client] == false && roll(0.05) {
            let node = leaderHint[client].flatMap { roll(0.8) ? $0 : nil }
                ?? pick(nodes.keys.sorted().filter { !removed.contains($0) })!
            _ = issue(client: client, node: node, kind: Int(rng.next() % 100), forcedKey: nil)
        }
    }

    /// Starts an operation at `node`: kind < 50 is a put, < 85 a ReadIndex get, else a get
    /// through the log. Returns the request id, or nil if the node refused it.
    @discardableResult
    mutating func issue(client: Int, node id: RaftID, kind: Int, forcedKey: String?) -> Int? {
        guard nodes[id]?.isUp == true else { return nil }
        let key = forcedKey ?? "k\(rng.next() % UInt64(options.keys))"
        clientSeq[client, default: 0] += 1
        let seq = clientSeq[client]!
        let requestID = nextRequest
        nextRequest += 1
        let input: KVOperation.Input = kind < 50 ? .put(key: key, value: "c\(client).\(seq)") : .get(key: key)
        let op = KVOperation(client: client, input: input, call: stamp(), ret: .max)
        let request = Request(id: requestID, op: op, node: id, deadline: now + 400)
        if kind >= 50 && kind < 85 {
            nodes[id]!.core!.readIndex(context: Array("r\(requestID)".utf8))
            nodes[id]!.waitingReadIndex[Array("r\(requestID)".utf8)] = requestID
        } else {
            let cmd = KVCommand(kind: kind < 50 ? .put : .get, client: client, seq: seq, key: key,
                                value: kind < 50 ? "c\(client).\(seq)" : "")
            do {
                let (index, term) = try nodes[id]!.core!.propose(cmd.encoded())
                nodes[id]!.waitingApply[index, default: []].append((term, requestID))
            } catch let error {
                if case .notLeader(let leader) = error, leader != 0 { leaderHint[client] = leader }
                return nil
            }
        }
        requests[requestID] = request
        clientBusy[client] = true
        return requestID
    }

    mutating func complete(_ request: inout Request) {
        request.op.ret = stamp()
        report.history.append(request.op)
        if case .put = request.op.input { report.committedWrites += 1 } else { report.completedReads += 1 }
        requests[request.id] = nil
        clientBusy[request.op.client] = false
        leaderHint[request.op.client] = request.node
    }

    mutating func expireRequests() {
        for (id, request) in requests.sorted(by: { $0.key < $1.key }) where now > request.deadline {
            requests[id] = nil
            clientBusy[request.op.client] = false
            leaderHint[request.op.client] = nil
            // A put that timed out may or may not take effect: it stays in the history with
            // an unknown return. A get that timed out had no effect and is left out.
            if case .put = request.op.input { report.history.append(request.op) }
        }
    }
}
