import ArgumentParser
import Foundation
import SwarmRaft
import SwarmRaftNode

/// The log's write path: batches of entries appended and fsynced, as the Raft loop does
/// once per Ready. Compare with `Benchmarks/sqlite_log_bench.py`, which does the same
/// against SQLite in WAL mode with synchronous=FULL.
struct WALBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "wal", abstract: "Benchmark the write-ahead log")

    @Option(help: "Entries per fsynced batch")
    var batch = 64

    @Option(help: "Payload bytes per entry")
    var payload = 128

    @Option(help: "Batches to write")
    var batches = 2000

    func run() async throws {
        let dir = NSTemporaryDirectory() + "swarm-wal-bench-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (wal, _) = try WAL.open(directory: dir)
        let data = [UInt8](repeating: 0x61, count: payload)
        var index: UInt64 = 0
        let clock = ContinuousClock()
        let elapsed = try clock.measure {
            for _ in 0..<batches {
                var entries: [Entry] = []
                entries.reserveCapacity(batch)
                for _ in 0..<batch {
                    index += 1
                    entries.append(Entry(term: 1, index: index, data: data))
                }
                try wal.append(entries: entries, hardState: HardState(term: 1, vote: 1, commit: index), sync: true)
            }
        }
        let s = seconds(elapsed)
        print("wal: \(batches) fsynced batches of \(batch) × \(payload) B: \(rate(Int(index), s)) entries, \(rate(batches, s)) batches, \(ms(s / Double(batches))) per batch")
    }
}
