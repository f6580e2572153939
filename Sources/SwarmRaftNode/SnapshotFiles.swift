#if canImport(Glibc)
import Glibc
#endif
import SwarmCA
import SwarmRaft

/// Snapshot files: `<term>-<index>.snap` (hex), each
/// `"SWSNAP1\n" | u64 index | u64 term | voters | learners | data | u32 crc32c(all before)`,
/// or, with a data key, `"SWSNAP2\n"` and the data sealed with it.
/// Written to a temporary file, fsynced and renamed, so a crash never leaves a half file
/// under a real name.
public struct SnapshotFiles: Sendable {
    static let magic = Array("SWSNAP1\n".utf8)
    static let sealedMagic = Array("SWSNAP2\n".utf8)
    public let directory: String
    /// Older snapshots kept besides the newest.
    public var keepOld: Int
    /// Seals the snapshot data when set.
    let cipher: DataCipher?

    public init(directory: String, keepOld: Int = 1, cipher: DataCipher? = nil) throws(StorageError) {
        try WAL.makeDirectory(directory)
        self.directory = directory
        self.keepOld = keepOld
        self.cipher = cipher
    }

    static func encode(_ snap: Snapshot, cipher: DataCipher? = nil) -> [UInt8] {
        var w = ByteWriter()
        w.bytes.append(contentsOf: cipher == nil ? magic : sealedMagic)
        w.u64(snap.metadata.index)
        w.u64(snap.metadata.term)
        w.u32(UInt32(snap.metadata.confState.voters.count))
        for v in snap.metadata.confState.voters { w.u64(v) }
        w.u32(UInt32(snap.metadata.confState.learners.count))
        for l in snap.metadata.confState.learners { w.u64(l) }
        w.blob(cipher.map { $0.seal(snap.data) } ?? snap.data)
        w.u32(CRC32C.checksum(w.bytes))
        return w.bytes
    }

    static func decode(_ bytes: [UInt8], path: String, cipher: DataCipher? = nil) throws(StorageError) -> Snapshot {
        let head = Array(bytes.prefix(magic.count))
        guard bytes.count >= magic.count + 4, head == magic || head == sealedMagic else {
            throw .corruptSnapshot(path: path, reason: "not a snapshot file (bad header)")
        }
        let sealed = head == sealedMagic
        var tail = ByteReader(bytes, offset: bytes.count - 4)
        let stored = tail.u32()!
        let actual = CRC32C.checksum(Array(bytes.prefix(bytes.count - 4)))
        guard stored == actual else {
            throw .corruptSnapshot(path: path, reason: "checksum mismatch (stored \(stored), computed \(actual))")
        }
        var r = ByteReader(Array(bytes.prefix(bytes.count - 4)), offset: magic.count)
        guard let index = r.u64(), let term = r.u64(), let nv = r.u32() else {
            throw .corruptSnapshot(path: path, reason: "truncated metadata")
        }
        var voters: [RaftID] = []
        for _ in 0..<nv { guard let v = r.u64() else { throw .corruptSnapshot(path: path, reason: "truncated voters") }; voters.append(v) }
        guard let nl = r.u32() else { throw .corruptSnapshot(path: path, reason: "truncated learners") }
        var learners: [RaftID] = []
        for _ in 0..<nl { guard let l = r.u64() else { throw .corruptSnapshot(path: path, reason: "truncated learners") }; learners.append(l) }
        guard var data = r.blob(), r.remaining == 0 else { throw .corruptSnapshot(path: path, reason: "bad data length") }
        if sealed {
            guard let cipher else { throw .corruptSnapshot(path: path, reason: "the snapshot is sealed with a data key, and none was given") }
            do { data = try cipher.open(data) } catch { throw .corruptSnapshot(path: path, reason: error.description) }
        }
        return Snapshot(metadata: SnapshotMetadata(index: index, term: term,
                                                   confState: ConfState(voters: voters, learners: learners)),
                        data: data)
    }

    func path(term: UInt64, index: UInt64) -> String {
        func hex(_ v: UInt64) -> String {
            let s = String(v, radix: 16)
            return String(repeating: "0", count: max(0, 16 - s.count)) + s
        }
        return "\(directory)/\(hex(term))-\(hex(index)).snap"
    }

    /// Writes a snapshot durably and removes all but the newest `keepOld + 1`.
    public func save(_ snap: Snapshot) throws(StorageError) {
        let final = path(term: snap.metadata.term, index: snap.metadata.index)
        let tmp = final + ".tmp"
        let bytes = Self.encode(snap, cipher: cipher)
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if fd < 0 { throw .io(path: tmp, operation: "open", errno: errno) }
        do {
            try WAL.writeAll(fd, bytes, path: tmp)
        } catch {
            close(fd)
            throw error
        }
        if fsync(fd) != 0 { let e = errno; close(fd); throw .io(path: tmp, operation: "fsync", errno: e) }
        close(fd)
        if rename(tmp, final) != 0 { throw .io(path: final, operation: "rename", errno: errno) }
        try WAL.syncDirectory(directory)
        let all = list()
        if all.count > keepOld + 1 {
            for name in all.prefix(all.count - keepOld - 1) { unlink("\(directory)/\(name)") }
        }
    }

    /// Snapshot file names, oldest first (by index).
    func list() -> [String] {
        var names: [(UInt64, String)] = []
        for name in WAL.listDirectory(directory) {
            guard name.hasSuffix(".snap") else {
                if name.hasSuffix(".snap.tmp") { unlink("\(directory)/\(name)") }
                continue
            }
            let parts = name.dropLast(5).split(separator: "-")
            if parts.count == 2, let index = UInt64(parts[1], radix: 16) { names.append((index, name)) }
        }
        return names.sorted { $0.0 < $1.0 }.map(\.1)
    }

    /// The newest snapshot, or nil if there is none. A corrupt newest snapshot is an
    /// error: falling back to an older one could need log entries that were compacted.
    public func loadNewest() throws(StorageError) -> Snapshot? {
        guard let newest = list().last else { return nil }
        let p = "\(directory)/\(newest)"
        return try Self.decode(try WAL.readFile(p), path: p, cipher: cipher)
    }
}
