/// The in-memory Raft log: a compacted prefix (summarised by `offset`/`offsetTerm`),
/// the retained entries, and the bookkeeping of what is durable, committed and applied.
///
/// Invariants: `offset <= applied <= committed <= lastIndex` once a snapshot is applied;
/// `stable <= lastIndex`; entries are contiguous from `offset + 1`.
struct RaftLog: Sendable {
    /// Index of the entry just before `entries[0]` (the compaction point).
    private(set) var offset: UInt64 = 0
    /// Term of the entry at `offset`.
    private(set) var offsetTerm: UInt64 = 0
    private(set) var entries: [Entry] = []
    /// The latest snapshot, sent to followers that fall behind the compaction point.
    private(set) var snapshot = Snapshot()
    /// A snapshot received from the leader that the application must persist and apply.
    private(set) var pendingSnapshot: Snapshot?
    var committed: UInt64 = 0
    private(set) var applied: UInt64 = 0
    /// The last index known to be on stable storage.
    private(set) var stable: UInt64 = 0

    init() {}

    /// Rebuilds the log from what storage recovered.
    init(snapshot: Snapshot, entries: [Entry], commit: UInt64) {
        self.snapshot = snapshot
        offset = snapshot.metadata.index
        offsetTerm = snapshot.metadata.term
        // Storage may hold entries older than the snapshot; keep only what follows it.
        self.entries = entries.filter { $0.index > offset }
        var expected = offset + 1
        for e in self.entries {
            precondition(e.index == expected, "recovered log is not contiguous at \(e.index)")
            expected += 1
        }
        stable = lastIndex
        committed = max(min(commit, lastIndex), offset)
        applied = offset
    }

    var firstIndex: UInt64 { offset + 1 }
    var lastIndex: UInt64 { offset + UInt64(entries.count) }
    var lastTerm: UInt64 { term(at: lastIndex) ?? 0 }

    /// The term of the entry at `index`, or nil if it is compacted or beyond the end.
    func term(at index: UInt64) -> UInt64? {
        if index == offset { return offsetTerm }
        if index < offset || index > lastIndex { return nil }
        return entries[Int(index - offset - 1)].term
    }

    func matchTerm(_ index: UInt64, _ term: UInt64) -> Bool {
        self.term(at: index) == term
    }

    /// Whether a candidate with this last entry is at least as up to date as this log (§5.4.1).
    func isUpToDate(lastIndex candidateIndex: UInt64, term candidateTerm: UInt64) -> Bool {
        candidateTerm > lastTerm || (candidateTerm == lastTerm && candidateIndex >= lastIndex)
    }

    /// Entries in `[lo, hi)`, limited to roughly `maxBytes` (at least one entry).
    func slice(from lo: UInt64, to hi: UInt64, maxBytes: Int = .max) throws(RaftError) -> [Entry] {
        if lo <= offset { throw .compacted }
        let upper = min(hi, lastIndex + 1)
        if lo >= upper { return [] }
        var out: [Entry] = []
        var size = 0
        var i = lo
        while i < upper {
            let e = entries[Int(i - offset - 1)]
            size += e.byteSize
            if !out.isEmpty && size > maxBytes { break }
            out.append(e)
            i += 1
        }
        return out
    }

    /// Appends entries the leader created locally.
    mutating func append(_ new: [Entry]) {
        guard let first = new.first else { return }
        precondition(first.index == lastIndex + 1, "append out of order")
        entries.append(contentsOf: new)
    }

    /// Handles an append from the leader (§5.3). Returns the new last index of the matched
    /// region, or nil if `prevIndex`/`prevTerm` do not match.
    mutating func maybeAppend(prevIndex: UInt64, prevTerm: UInt64, commit: UInt64, entries new: [Entry]) -> UInt64? {
        guard matchTerm(prevIndex, prevTerm) else { return nil }
        let lastNew = prevIndex + UInt64(new.count)
        // Find the first entry that conflicts with (or extends) the local log.
        var start = new.count
        for (k, e) in new.enumerated() where !matchTerm(e.index, e.term) {
            start = k
            break
        }
        if start < new.count {
            let conflictIndex = new[start].index
            precondition(conflictIndex > committed, "conflict with committed entry \(conflictIndex)")
            if conflictIndex <= lastIndex {
                // Truncate the conflicting suffix.
                entries.removeLast(Int(lastIndex - conflictIndex + 1))
                stable = min(stable, conflictIndex - 1)
            }
            entries.append(contentsOf: new[start...])
        }
        commitTo(min(commit, lastNew))
        return lastNew
    }

    mutating func commitTo(_ index: UInt64) {
        if index > committed {
            precondition(index <= lastIndex, "commit \(index) beyond last index \(lastIndex)")
            committed = index
        }
    }

    /// Fast backtracking: the largest index `<= index` whose term is `<= term`.
    func findConflict(byTerm term: UInt64, atOrBelow index: UInt64) -> UInt64 {
        var i = min(index, lastIndex)
        while i > offset {
            if let t = self.term(at: i), t <= term { return i }
            i -= 1
        }
        return offset
    }

    // MARK: Durability and application

    /// Entries written since the last `stableTo`.
    /// Whether there are entries not yet on stable storage (without copying them).
    var hasUnstableEntries: Bool { max(stable, offset) < lastIndex }

    var unstableEntries: [Entry] {
        let from = max(stable, offset)
        if from >= lastIndex { return [] }
        return Array(entries[Int(from - offset)...])
    }

    /// Records that storage holds everything up to `index` (if its term still matches).
    mutating func stableTo(index: UInt64, term: UInt64) {
        if matchTerm(index, term) && index > stable { stable = index }
    }

    /// Committed entries not yet handed out for application, limited to `maxBytes`.
    func entriesToApply(after appliedOrHanded: UInt64, maxBytes: Int) -> [Entry] {
        let lo = max(appliedOrHanded, offset) + 1
        let hi = committed + 1
        if lo >= hi { return [] }
        return (try? slice(from: lo, to: hi, maxBytes: maxBytes)) ?? []
    }

    mutating func appliedTo(_ index: UInt64) {
        precondition(index <= committed, "applied \(index) beyond commit \(committed)")
        if index > applied { applied = index }
    }

    // MARK: Snapshots

    /// Installs a snapshot from the leader: the log is replaced, unless it already holds
    /// the snapshot's last entry, in which case the log is only fast-forwarded.
    /// Returns false if the snapshot is not newer than what is committed.
    mutating func restore(_ snap: Snapshot) -> Bool {
        let index = snap.metadata.index
        if index <= committed { return false }
        if matchTerm(index, snap.metadata.term) {
            commitTo(index)
            return false
        }
        entries = []
        offset = index
        offsetTerm = snap.metadata.term
        committed = index
        stable = min(stable, index)
        snapshot = snap
        pendingSnapshot = snap
        return true
    }

    /// Called once the pending snapshot is durable and applied.
    mutating func snapshotApplied(index: UInt64) {
        guard let p = pendingSnapshot, p.metadata.index == index else { return }
        pendingSnapshot = nil
        if stable < index { stable = index }
        if applied < index { applied = index }
    }

    /// Records a snapshot the application took at `snap.metadata.index` (at most the
    /// applied index), and drops entries up to `compactTo`.
    mutating func installLocalSnapshot(_ snap: Snapshot, compactTo: UInt64) throws(RaftError) {
        let index = snap.metadata.index
        guard index <= applied else { throw .snapshotOutOfDate }
        guard index > snapshot.metadata.index else { throw .snapshotOutOfDate }
        guard matchTerm(index, snap.metadata.term) else { throw .compacted }
        snapshot = snap
        let cut = min(compactTo, index)
        if cut > offset, let t = term(at: cut) {
            entries.removeFirst(Int(cut - offset))
            offset = cut
            offsetTerm = t
        }
    }
}
