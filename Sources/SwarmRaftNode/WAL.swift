#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SwarmCA
import SwarmRaft

/// Errors of the durable storage. Corruption is never repaired silently: only a torn
/// tail (an incomplete last write) is truncated, and that is reported.
public enum StorageError: Error, Sendable, Equatable, CustomStringConvertible {
    case io(path: String, operation: String, errno: Int32)
    /// A record failed its checksum or is malformed, and it is not a torn tail.
    case corrupt(path: String, offset: Int, reason: String)
    case corruptSnapshot(path: String, reason: String)

    public var description: String {
        switch self {
        case .io(let path, let op, let e):
            return "\(op) \(path): \(String(cString: strerror(e)))"
        case .corrupt(let path, let offset, let reason):
            return "corrupt write-ahead log \(path) at byte \(offset): \(reason)"
        case .corruptSnapshot(let path, let reason):
            return "corrupt snapshot \(path): \(reason)"
        }
    }
}

/// What recovery found and did.
public struct WALRecovery: Sendable, Equatable {
    public var hardState = HardState()
    public var entries: [Entry] = []
    /// The compaction point recorded in the log (index, term), if any.
    public var snapshotIndex: UInt64 = 0
    public var snapshotTerm: UInt64 = 0
    /// Set when an incomplete record at the end of the last segment was cut off.
    public var truncatedTail: (path: String, offset: Int, droppedBytes: Int)?
    public var truncationReason: String?

    public static func == (a: WALRecovery, b: WALRecovery) -> Bool {
        a.hardState == b.hardState && a.entries == b.entries && a.snapshotIndex == b.snapshotIndex
            && a.snapshotTerm == b.snapshotTerm && a.truncatedTail?.path == b.truncatedTail?.path
            && a.truncatedTail?.offset == b.truncatedTail?.offset
    }
}

/// A segmented write-ahead log with a CRC-32C per record.
///
/// Record: `u32 length | u32 crc32c(payload) | payload`; payload starts with a type byte
/// (1 entry, 2 hard state, 3 compaction marker, 4 entry whose data is sealed with the
/// node's data key: what managers write, so that nothing of the store is on disk in the
/// clear). Segments are named by sequence number and
/// rolled at `segmentBytes`; segments wholly below a compaction point are deleted.
public final class WAL {
    static let headerSize = 8
    static let maxRecord = 256 << 20

    public let directory: String
    let segmentBytes: Int
    /// Seals entry data when set (record type 4); needed to read such records back.
    let cipher: DataCipher?
    private var fd: Int32 = -1
    private var currentPath = ""
    private var currentSize = 0
    private var sequence: UInt64 = 0
    /// Sequence -> highest entry index written to that segment.
    private var segmentMaxIndex: [UInt64: UInt64] = [:]
    private var hardState = HardState()
    private var marker: (index: UInt64, term: UInt64) = (0, 0)

    /// Opens (creating if needed) the log in `directory` and replays it.
    public static func open(directory: String, segmentBytes: Int = 64 << 20, cipher: DataCipher? = nil) throws(StorageError) -> (WAL, WALRecovery) {
        try makeDirectory(directory)
        let wal = WAL(directory: directory, segmentBytes: segmentBytes, cipher: cipher)
        let recovery = try wal.replay()
        try wal.openSegment(sequence: wal.sequence == 0 ? 1 : wal.sequence, create: wal.sequence == 0)
        return (wal, recovery)
    }

    private init(directory: String, segmentBytes: Int, cipher: DataCipher?) {
        self.directory = directory
        self.segmentBytes = segmentBytes
        self.cipher = cipher
    }

    deinit { if fd >= 0 { close(fd) } }

    func sequenceAfterReplay(_ seq: UInt64, maxIndex: UInt64?) {
        sequence = seq
        segmentMaxIndex[seq] = maxIndex ?? 0
    }

    func restoreState(hardState hs: HardState, marker m: (UInt64, UInt64)) {
        hardState = hs
        marker = m
    }

    // MARK: Writing

    /// Appends entries and/or a hard state in one write; fsyncs when `sync` is set.
    public func append(entries: [Entry], hardState newHardState: HardState?, sync: Bool) throws(StorageError) {
        var w = ByteWriter()
        for e in entries { Self.encodeEntry(e, cipher: cipher, into: &w) }
        if let hs = newHardState { Self.encodeHardState(hs, into: &w) }
        if w.bytes.isEmpty { return }
        if currentSize > 0 && currentSize + w.bytes.count > segmentBytes {
            try roll()
        }
        try write(w.bytes)
        if let last = entries.last {
            segmentMaxIndex[sequence] = max(segmentMaxIndex[sequence] ?? 0, last.index)
        }
        if let hs = newHardState { hardState = hs }
        if sync { try self.sync() }
    }

    /// Records that everything up to `index` is covered by a snapshot, starts a new
    /// segment and deletes the segments that hold nothing newer than `compactTo`.
    public func compact(snapshotIndex index: UInt64, term: UInt64, compactTo: UInt64) throws(StorageError) {
        marker = (index, term)
        var w = ByteWriter()
        Self.encodeMarker(index: index, term: term, into: &w)
        try write(w.bytes)
        try sync()
        try roll()
        for (seq, maxIndex) in segmentMaxIndex where seq < sequence && maxIndex <= compactTo {
            let path = segmentPath(seq)
            if unlink(path) != 0 && errno != ENOENT { throw .io(path: path, operation: "unlink", errno: errno) }
            segmentMaxIndex[seq] = nil
        }
        // Segments without entries (only hard states or markers) below the current one
        // are superseded by the header of the new segment.
        for seq in listSegments() where seq < sequence && segmentMaxIndex[seq] == nil {
            unlink(segmentPath(seq))
        }
        try Self.syncDirectory(directory)
    }

    public func sync() throws(StorageError) {
        if fdatasync(fd) != 0 { throw .io(path: currentPath, operation: "fdatasync", errno: errno) }
    }

    public var segmentCount: Int { listSegments().count }

    private func write(_ bytes: [UInt8]) throws(StorageError) {
        try Self.writeAll(fd, bytes, path: currentPath)
        currentSize += bytes.count
    }

    private func roll() throws(StorageError) {
        try sync()
        close(fd)
        fd = -1
        try openSegment(sequence: sequence + 1, create: true)
        // Each segment starts self-describing: the hard state and the compaction point.
        var w = ByteWriter()
        Self.encodeHardState(hardState, into: &w)
        if marker.index > 0 { Self.encodeMarker(index: marker.index, term: marker.term, into: &w) }
        try write(w.bytes)
        try sync()
    }

    private func openSegment(sequence seq: UInt64, create: Bool) throws(StorageError) {
        let path = segmentPath(seq)
        let flags = O_WRONLY | O_APPEND | O_CLOEXEC | (create ? O_CREAT : 0)
        let f = Glibc.open(path, flags, 0o644)
        if f < 0 { throw .io(path: path, operation: "open", errno: errno) }
        fd = f
        currentPath = path
        sequence = seq
        var st = stat()
        fstat(f, &st)
        currentSize = Int(st.st_size)
        if create { try Self.syncDirectory(directory) }
    }

    func segmentPath(_ seq: UInt64) -> String {
        let hex = String(seq, radix: 16)
        return directory + "/" + String(repeating: "0", count: max(0, 16 - hex.count)) + hex + ".wal"
    }

    func listSegments() -> [UInt64] {
        Self.listDirectory(directory).compactMap { name in
            name.hasSuffix(".wal") ? UInt64(name.dropLast(4), radix: 16) : nil
        }.sorted()
    }

    // MARK: Encoding

    static func frame(_ payload: ByteWriter, into w: inout ByteWriter) {
        w.u32(UInt32(payload.bytes.count))
        w.u32(CRC32C.checksum(payload.bytes))
        w.bytes.append(contentsOf: payload.bytes)
    }

    static func encodeEntry(_ e: Entry, cipher: DataCipher? = nil, into w: inout ByteWriter) {
        var p = ByteWriter()
        p.bytes.reserveCapacity(e.data.count + 18 + 34)
        p.u8(cipher == nil ? 1 : 4)
        p.u64(e.term)
        p.u64(e.index)
        p.u8(e.type.rawValue)
        if let cipher { p.bytes.append(contentsOf: cipher.seal(e.data)) } else { p.bytes.append(contentsOf: e.data) }
        frame(p, into: &w)
    }

    static func encodeHardState(_ hs: HardState, into w: inout ByteWriter) {
        var p = ByteWriter()
        p.u8(2)
        p.u64(hs.term)
        p.u64(hs.vote)
        p.u64(hs.commit)
        frame(p, into: &w)
    }

    static func encodeMarker(index: UInt64, term: UInt64, into w: inout ByteWriter) {
        var p = ByteWriter()
        p.u8(3)
        p.u64(index)
        p.u64(term)
        frame(p, into: &w)
    }
}
