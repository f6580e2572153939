/// The leader's view of one follower's replication state.
struct Progress: Sendable {
    enum State: Sendable, Equatable {
        /// The leader does not know where the follower's log ends; it sends one append
        /// per heartbeat interval until a match is found.
        case probe
        /// The follower is in sync; appends are pipelined up to the in-flight window.
        case replicate
        /// A snapshot is in flight; nothing else is sent until it is acknowledged.
        case snapshot(index: UInt64)
    }

    var match: UInt64 = 0
    var next: UInt64
    var state: State = .probe
    /// In probe state, whether an append was sent and is still unanswered.
    var probeSent = false
    /// Last index of each in-flight append, oldest first (the flow-control window).
    var inflight: [UInt64] = []
    /// Set whenever the follower answers; cleared by the leader's quorum check.
    var recentActive = false
    var isLearner: Bool

    init(next: UInt64, isLearner: Bool) {
        self.next = next
        self.isLearner = isLearner
    }

    mutating func becomeProbe() {
        if case .snapshot(let index) = state {
            state = .probe
            next = max(match + 1, index + 1)
        } else {
            state = .probe
            next = match + 1
        }
        probeSent = false
        inflight.removeAll()
    }

    mutating func becomeReplicate() {
        state = .replicate
        next = match + 1
        inflight.removeAll()
    }

    mutating func becomeSnapshot(_ index: UInt64) {
        state = .snapshot(index: index)
        inflight.removeAll()
    }

    /// Records an acknowledgement of `index`. Returns false if it is stale.
    mutating func maybeUpdate(_ index: UInt64) -> Bool {
        var updated = false
        if match < index {
            match = index
            updated = true
            probeSent = false
        }
        next = max(next, index + 1)
        // Free the window up to the acknowledged index.
        while let first = inflight.first, first <= index { inflight.removeFirst() }
        return updated
    }

    /// Handles a rejection. Returns false if it is stale.
    mutating func maybeDecrease(rejected: UInt64, matchHint: UInt64) -> Bool {
        if state == .replicate {
            if rejected <= match { return false }
            next = match + 1
            return true
        }
        if next - 1 != rejected { return false }
        next = max(min(rejected, matchHint + 1), 1)
        probeSent = false
        return true
    }

    func isPaused(maxInflight: Int) -> Bool {
        switch state {
        case .probe: return probeSent
        case .replicate: return inflight.count >= maxInflight
        case .snapshot: return true
        }
    }

    /// Records that an append ending at `last` was sent.
    mutating func sentEntries(last: UInt64, count: Int) {
        switch state {
        case .replicate:
            if count > 0 {
                next = last + 1
                inflight.append(last)
            }
        case .probe:
            probeSent = true
        case .snapshot:
            break
        }
    }
}
