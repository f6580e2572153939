import SwarmAPI
import SwarmRaft
import SwiftProtobuf

/// Conversions between the core's messages and their wire form.
extension SwarmRaftMessage {
    init(_ m: SwarmRaft.Message) {
        self.init()
        type = UInt32(m.type.rawValue)
        to = m.to
        from = m.from
        term = m.term
        logTerm = m.logTerm
        index = m.index
        entries = m.entries.map { e in
            SwarmRaftEntry.with {
                $0.term = e.term
                $0.index = e.index
                $0.type = UInt32(e.type.rawValue)
                $0.data = Data(e.data)
            }
        }
        commit = m.commit
        if let snap = m.snapshot { snapshot = SwarmRaftSnapshotMetadata(snap.metadata) }
        reject = m.reject
        rejectHint = m.rejectHint
        context = Data(m.context)
    }

    /// The core message, or nil if the wire form is invalid.
    func toCore(snapshotData: [UInt8]? = nil) -> SwarmRaft.Message? {
        guard let t = MessageType(rawValue: UInt8(truncatingIfNeeded: type)), type <= 255 else { return nil }
        var entries: [Entry] = []
        entries.reserveCapacity(self.entries.count)
        for e in self.entries {
            guard let et = EntryType(rawValue: UInt8(truncatingIfNeeded: e.type)) else { return nil }
            entries.append(Entry(term: e.term, index: e.index, type: et, data: [UInt8](e.data)))
        }
        var snap: Snapshot?
        if t == .snapshot {
            guard hasSnapshot, let data = snapshotData else { return nil }
            snap = Snapshot(metadata: snapshot.core, data: data)
        }
        return Message(type: t, to: to, from: from, term: term, logTerm: logTerm, index: index, entries: entries,
                       commit: commit, snapshot: snap, reject: reject, rejectHint: rejectHint,
                       context: [UInt8](context))
    }
}

extension SwarmRaftSnapshotMetadata {
    init(_ m: SnapshotMetadata) {
        self.init()
        index = m.index
        term = m.term
        confState.voters = m.confState.voters
        confState.learners = m.confState.learners
    }

    var core: SnapshotMetadata {
        SnapshotMetadata(index: index, term: term,
                         confState: ConfState(voters: confState.voters, learners: confState.learners))
    }
}

import Foundation
