import Foundation
import SwarmAPI
import SwiftProtobuf

/// Reads a task's output from the files its executor keeps in the task's work directory:
/// `stdout.log` and `stderr.log`, with rotated older files `stdout.log.1` (newest) up to
/// `.N`. Follows the live files across rotations.
struct LogReader {
    struct Stream {
        let kind: SwarmLogLine.Stream
        let path: String
        var inode: UInt64 = 0
        var offset: UInt64 = 0
        var partial = Data()
    }

    let taskID: String
    let nodeID: String
    var streams: [Stream]

    init(taskID: String, nodeID: String, workDir: String) {
        self.taskID = taskID
        self.nodeID = nodeID
        streams = [Stream(kind: .stdout, path: workDir + "/stdout.log"), Stream(kind: .stderr, path: workDir + "/stderr.log")]
    }

    /// Everything kept so far (the last `tail` lines of each stream when `tail` > 0), and
    /// positions the reader at the end of the live files.
    mutating func initial(tail: UInt32) -> [SwarmLogLine] {
        var out: [SwarmLogLine] = []
        for i in streams.indices {
            var data = Data()
            var rotated = 1
            var older: [String] = []
            while FileManager.default.fileExists(atPath: "\(streams[i].path).\(rotated)") {
                older.append("\(streams[i].path).\(rotated)")
                rotated += 1
            }
            for path in older.reversed() { data += FileManager.default.contents(atPath: path) ?? Data() }
            let (inode, live) = Self.read(streams[i].path, from: 0)
            data += live
            streams[i].inode = inode
            streams[i].offset = UInt64(live.count)
            var lines = split(&streams[i], data)
            if tail > 0 && lines.count > Int(tail) { lines = Array(lines.suffix(Int(tail))) }
            out += lines
        }
        return out
    }

    /// New complete lines since the last call. A live file that was rotated is finished
    /// from its rotated copy, then read from the start.
    mutating func poll() -> [SwarmLogLine] {
        var out: [SwarmLogLine] = []
        for i in streams.indices {
            let current = Self.inode(streams[i].path)
            if current != 0 && current != streams[i].inode {
                // Rotated: the rest of the old file is now in ".1".
                if Self.inode(streams[i].path + ".1") == streams[i].inode {
                    let (_, rest) = Self.read(streams[i].path + ".1", from: streams[i].offset)
                    out += split(&streams[i], rest)
                }
                streams[i].inode = current
                streams[i].offset = 0
            }
            let (_, data) = Self.read(streams[i].path, from: streams[i].offset)
            streams[i].offset += UInt64(data.count)
            out += split(&streams[i], data)
        }
        return out
    }

    /// Cuts complete lines (keeping their newline); an incomplete last line waits.
    func split(_ stream: inout Stream, _ data: Data) -> [SwarmLogLine] {
        var buffer = stream.partial + data
        var lines: [SwarmLogLine] = []
        while let nl = buffer.firstIndex(of: 0x0A) {
            let line = buffer[buffer.startIndex...nl]
            lines.append(.with { $0.taskID = taskID; $0.nodeID = nodeID; $0.stream = stream.kind; $0.data = Data(line) })
            buffer = Data(buffer[buffer.index(after: nl)...])
        }
        // A very long line without a newline is sent in pieces.
        if buffer.count >= 64 << 10 {
            lines.append(.with { $0.taskID = taskID; $0.nodeID = nodeID; $0.stream = stream.kind; $0.data = buffer })
            buffer = Data()
        }
        stream.partial = buffer
        return lines
    }

    /// What is left of the incomplete last lines, when the reader stops.
    mutating func flush() -> [SwarmLogLine] {
        var out: [SwarmLogLine] = []
        for i in streams.indices where !streams[i].partial.isEmpty {
            out.append(.with { $0.taskID = taskID; $0.nodeID = nodeID; $0.stream = streams[i].kind; $0.data = streams[i].partial })
            streams[i].partial = Data()
        }
        return out
    }

    static func inode(_ path: String) -> UInt64 {
        var st = stat()
        return stat(path, &st) == 0 ? UInt64(st.st_ino) : 0
    }

    /// The file's inode and its bytes from `offset` (at most 4 MiB at a time).
    static func read(_ path: String, from offset: UInt64) -> (UInt64, Data) {
        guard let h = FileHandle(forReadingAtPath: path) else { return (0, Data()) }
        defer { try? h.close() }
        var st = stat()
        let inode = fstat(h.fileDescriptor, &st) == 0 ? UInt64(st.st_ino) : 0
        guard (try? h.seek(toOffset: offset)) != nil else { return (inode, Data()) }
        return (inode, (try? h.read(upToCount: 4 << 20)) ?? Data())
    }
}
