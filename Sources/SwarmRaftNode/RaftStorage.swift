import SwarmCA
import SwarmRaft

/// The durable state of one Raft member: a write-ahead log plus snapshot files, under
/// `<directory>/wal` and `<directory>/snap`.
public final class RaftStorage {
    public let wal: WAL
    public let snapshots: SnapshotFiles

    /// Opens the storage and recovers what a restarting member needs.
    /// With `cipher`, entries and snapshots are sealed with that data key.
    public static func open(directory: String, segmentBytes: Int = 64 << 20, keepOldSnapshots: Int = 1, cipher: DataCipher? = nil)
        throws(StorageError) -> (storage: RaftStorage, recovered: RecoveredState, recovery: WALRecovery)
    {
        let snapshots = try SnapshotFiles(directory: directory + "/snap", keepOld: keepOldSnapshots, cipher: cipher)
        let snapshot = try snapshots.loadNewest() ?? Snapshot()
        let (wal, recovery) = try WAL.open(directory: directory + "/wal", segmentBytes: segmentBytes, cipher: cipher)
        if recovery.snapshotIndex > snapshot.metadata.index {
            throw .corruptSnapshot(path: snapshots.directory,
                                   reason: "the log was compacted to index \(recovery.snapshotIndex) but the newest snapshot is at \(snapshot.metadata.index)")
        }
        let entries = recovery.entries.filter { $0.index > snapshot.metadata.index }
        if let first = entries.first, first.index != snapshot.metadata.index + 1 {
            throw .corrupt(path: wal.directory, offset: 0,
                           reason: "log resumes at \(first.index) after a snapshot at \(snapshot.metadata.index)")
        }
        let recovered = RecoveredState(hardState: recovery.hardState, snapshot: snapshot, entries: entries)
        return (RaftStorage(wal: wal, snapshots: snapshots), recovered, recovery)
    }

    private init(wal: WAL, snapshots: SnapshotFiles) {
        self.wal = wal
        self.snapshots = snapshots
    }

    /// Makes a Ready's snapshot, entries and hard state durable (fsync when required).
    public func persist(_ rd: Ready) throws(StorageError) {
        if let snap = rd.snapshot {
            try snapshots.save(snap)
            try wal.compact(snapshotIndex: snap.metadata.index, term: snap.metadata.term, compactTo: snap.metadata.index)
        }
        try wal.append(entries: rd.entries, hardState: rd.hardState, sync: rd.mustSync)
    }

    /// Saves a snapshot the member took itself and drops log segments up to `compactTo`.
    public func saveSnapshot(_ snap: Snapshot, compactTo: UInt64) throws(StorageError) {
        try snapshots.save(snap)
        try wal.compact(snapshotIndex: snap.metadata.index, term: snap.metadata.term, compactTo: compactTo)
    }
}
