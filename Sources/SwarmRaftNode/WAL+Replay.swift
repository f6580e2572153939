#if canImport(Glibc)
import Glibc
#endif
import SwarmCA
import SwarmRaft

extension WAL {
    /// Reads every segment in order and rebuilds the log. A record that is cut short, or
    /// whose checksum fails while it is the very last record of the last segment, is a
    /// torn write: it is truncated away and reported. Any other bad record is corruption
    /// and fails with the file and byte offset.
    func replay() throws(StorageError) -> WALRecovery {
        var r = WALRecovery()
        let segments = listSegments()
        for (k, seq) in segments.enumerated() {
            let path = segmentPath(seq)
            let bytes = try Self.readFile(path)
            let isLast = k == segments.count - 1
            var offset = 0
            while offset < bytes.count {
                let remaining = bytes.count - offset
                var reader = ByteReader(bytes, offset: offset)
                let length = reader.u32().map(Int.init)
                let crc = reader.u32()
                let torn: String?
                if remaining < Self.headerSize || length == nil || crc == nil {
                    torn = "incomplete record header"
                } else if length == 0 && bytes[offset...].allSatisfy({ $0 == 0 }) {
                    torn = "zero-filled tail"
                } else if length! > Self.maxRecord || length! == 0 {
                    torn = nil
                    throw .corrupt(path: path, offset: offset, reason: "implausible record length \(length!)")
                } else if remaining < Self.headerSize + length! {
                    torn = "record of \(length!) bytes cut short at \(remaining - Self.headerSize)"
                } else {
                    let start = offset + Self.headerSize
                    let payload = Array(bytes[start..<start + length!])
                    if CRC32C.checksum(payload) != crc! {
                        if isLast && start + length! == bytes.count {
                            torn = "checksum mismatch in the final record"
                        } else {
                            throw .corrupt(path: path, offset: offset, reason: "checksum mismatch")
                        }
                    } else {
                        try Self.decode(payload, path: path, offset: offset, cipher: cipher, into: &r)
                        offset = start + length!
                        continue
                    }
                }
                guard isLast, let torn else {
                    throw .corrupt(path: path, offset: offset, reason: "\(torn ?? "bad record") in a segment that is not the last")
                }
                if truncate(path, off_t(offset)) != 0 { throw .io(path: path, operation: "truncate", errno: errno) }
                r.truncatedTail = (path, offset, bytes.count - offset)
                r.truncationReason = torn
                break
            }
            sequenceAfterReplay(seq, maxIndex: r.entries.last?.index)
        }
        r.entries.removeAll { $0.index <= r.snapshotIndex }
        if let first = r.entries.first, first.index != r.snapshotIndex + 1 {
            throw .corrupt(path: directory, offset: 0,
                           reason: "log starts at index \(first.index) but the snapshot ends at \(r.snapshotIndex)")
        }
        restoreState(hardState: r.hardState, marker: (r.snapshotIndex, r.snapshotTerm))
        return r
    }

    static func decode(_ payload: [UInt8], path: String, offset: Int, cipher: DataCipher? = nil,
                       into r: inout WALRecovery) throws(StorageError) {
        var p = ByteReader(payload)
        let kind = p.u8()
        switch kind {
        case 1, 4:
            guard let term = p.u64(), let index = p.u64(), let rawType = p.u8(),
                  let type = EntryType(rawValue: rawType) else {
                throw .corrupt(path: path, offset: offset, reason: "malformed entry record")
            }
            var data = Array(payload[p.offset...])
            if kind == 4 {
                guard let cipher else {
                    throw .corrupt(path: path, offset: offset, reason: "the entry is sealed with a data key, and none was given")
                }
                do { data = try cipher.open(data) } catch {
                    throw .corrupt(path: path, offset: offset, reason: error.description)
                }
            }
            let e = Entry(term: term, index: index, type: type, data: data)
            // A rewritten index replaces the suffix from that index on (log truncation).
            if let last = r.entries.last, index <= last.index {
                r.entries.removeAll { $0.index >= index }
            }
            if let last = r.entries.last, index != last.index + 1 {
                throw .corrupt(path: path, offset: offset, reason: "entry \(index) does not follow entry \(last.index)")
            }
            r.entries.append(e)
        case 2:
            guard let term = p.u64(), let vote = p.u64(), let commit = p.u64() else {
                throw .corrupt(path: path, offset: offset, reason: "malformed hard state record")
            }
            r.hardState = HardState(term: term, vote: vote, commit: commit)
        case 3:
            guard let index = p.u64(), let term = p.u64() else {
                throw .corrupt(path: path, offset: offset, reason: "malformed compaction record")
            }
            if index > r.snapshotIndex {
                r.snapshotIndex = index
                r.snapshotTerm = term
            }
        default:
            throw .corrupt(path: path, offset: offset, reason: "unknown record type")
        }
    }

    static func readFile(_ path: String) throws(StorageError) -> [UInt8] {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw .io(path: path, operation: "open", errno: errno) }
        defer { close(fd) }
        var st = stat()
        fstat(fd, &st)
        var bytes = [UInt8](repeating: 0, count: Int(st.st_size))
        var got = 0
        while got < bytes.count {
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + got, $0.count - got) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .io(path: path, operation: "read", errno: errno)
            }
            if n == 0 { break }
            got += n
        }
        return Array(bytes.prefix(got))
    }

    /// Writes all of `bytes` to `fd`, retrying short writes.
    static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(StorageError) {
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, $0.count - written) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .io(path: path, operation: "write", errno: errno)
            }
            written += n
        }
    }

    /// The names in a directory (empty if it cannot be read).
    static func listDirectory(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let ent = readdir(dir) {
            names.append(withUnsafePointer(to: ent.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            })
        }
        return names
    }

    static func syncDirectory(_ path: String) throws(StorageError) {
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 { throw .io(path: path, operation: "open directory", errno: errno) }
        defer { close(fd) }
        if fsync(fd) != 0 { throw .io(path: path, operation: "fsync directory", errno: errno) }
    }

    static func makeDirectory(_ path: String) throws(StorageError) {
        var current = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            current += "/" + part
            if mkdir(current, 0o755) != 0 && errno != EEXIST {
                throw .io(path: current, operation: "mkdir", errno: errno)
            }
        }
    }
}
