import Foundation
import SwarmRaft
@testable import SwarmRaftNode
import Testing

@Suite struct StorageTests {
    static func tempDir() -> String {
        let p = NSTemporaryDirectory() + "swarm-storage-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
        return p
    }

    static func entries(_ range: ClosedRange<UInt64>, term: UInt64 = 1, size: Int = 10) -> [Entry] {
        range.map { Entry(term: term, index: $0, data: Array(repeating: UInt8($0 % 251), count: size)) }
    }

    static func segmentFiles(_ dir: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir + "/wal").filter { $0.hasSuffix(".wal") }.sorted()
    }

    @Test func entriesAndHardStateSurviveReopen() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let (wal, r) = try WAL.open(directory: dir + "/wal")
            #expect(r.entries.isEmpty)
            try wal.append(entries: Self.entries(1...5), hardState: HardState(term: 1, vote: 2, commit: 3), sync: true)
        }
        let (_, r) = try WAL.open(directory: dir + "/wal")
        #expect(r.entries == Self.entries(1...5))
        #expect(r.hardState == HardState(term: 1, vote: 2, commit: 3))
        #expect(r.truncatedTail == nil)
    }

    @Test func rewrittenSuffixReplacesOldEntries() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let (wal, _) = try WAL.open(directory: dir + "/wal")
            try wal.append(entries: Self.entries(1...10), hardState: nil, sync: true)
            try wal.append(entries: Self.entries(6...7, term: 2), hardState: nil, sync: true)
        }
        let (_, r) = try WAL.open(directory: dir + "/wal")
        #expect(r.entries == Self.entries(1...5) + Self.entries(6...7, term: 2))
    }

    @Test func tornTailIsTruncatedToTheLastValidRecord() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let (wal, _) = try WAL.open(directory: dir + "/wal")
            try wal.append(entries: Self.entries(1...8), hardState: nil, sync: true)
        }
        let file = dir + "/wal/" + (try Self.segmentFiles(dir)).last!
        let size = try FileManager.default.attributesOfItem(atPath: file)[.size] as! Int
        // Cut the last record in half, as a crash in the middle of a write would.
        truncate(file, off_t(size - 7))
        do {
            let (wal, r) = try WAL.open(directory: dir + "/wal")
            #expect(r.entries == Self.entries(1...7))
            #expect(r.truncatedTail?.path == file)
            #expect(r.truncationReason?.contains("cut short") == true)
            // The log keeps working after the repair.
            try wal.append(entries: Self.entries(8...9, term: 2), hardState: nil, sync: true)
        }
        let (_, again) = try WAL.open(directory: dir + "/wal")
        #expect(again.entries == Self.entries(1...7) + Self.entries(8...9, term: 2))
        #expect(again.truncatedTail == nil)
    }

    @Test func garbledFinalRecordCountsAsTornWrite() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let (wal, _) = try WAL.open(directory: dir + "/wal")
            try wal.append(entries: Self.entries(1...4), hardState: nil, sync: true)
        }
        let file = dir + "/wal/" + (try Self.segmentFiles(dir)).last!
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
        bytes[bytes.count - 2] ^= 0x10
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        let (_, r) = try WAL.open(directory: dir + "/wal")
        #expect(r.entries == Self.entries(1...3))
        #expect(r.truncationReason == "checksum mismatch in the final record")
    }

    @Test func flippedBitInTheMiddleIsAnErrorNamingFileAndOffset() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let (wal, _) = try WAL.open(directory: dir + "/wal")
            try wal.append(entries: Self.entries(1...10, size: 20), hardState: nil, sync: true)
        }
        let file = dir + "/wal/" + (try Self.segmentFiles(dir)).last!
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
        let original = bytes
        // Each entry record is 8 (header) + 18 (fixed payload) + 20 (data) = 46 bytes.
        bytes[46 * 4 + 30] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        #expect(throws: StorageError.corrupt(path: file, offset: 46 * 4, reason: "checksum mismatch")) {
            _ = try WAL.open(directory: dir + "/wal")
        }
        // Nothing was "repaired": the file is exactly as it was found.
        let after = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
        #expect(after.count == original.count)
        #expect(after == bytes)
    }

    @Test func segmentsRollAndCompactionDeletesOldOnes() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let (wal, _) = try WAL.open(directory: dir + "/wal", segmentBytes: 4096)
            for k in 0..<20 {
                let lo = UInt64(k * 10 + 1)
                try wal.append(entries: Self.entries(lo...(lo + 9), size: 50), hardState: HardState(term: 1, commit: lo + 9), sync: false)
            }
            try wal.sync()
            #expect(wal.segmentCount > 3)
            let before = wal.segmentCount
            try wal.compact(snapshotIndex: 150, term: 1, compactTo: 150)
            #expect(wal.segmentCount < before)
        }
        let (_, r) = try WAL.open(directory: dir + "/wal", segmentBytes: 4096)
        #expect(r.snapshotIndex == 150)
        #expect(r.entries == Self.entries(151...200, size: 50))
        #expect(r.hardState.commit == 200)
    }

    @Test func snapshotFilesRoundTripAndDetectCorruption() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let files = try SnapshotFiles(directory: dir + "/snap", keepOld: 1)
        for index in [UInt64(10), 20, 30] {
            try files.save(Snapshot(metadata: SnapshotMetadata(index: index, term: 2, confState: ConfState(voters: [1, 2, 3], learners: [4])),
                                    data: Array("state-\(index)".utf8)))
        }
        #expect(files.list().count == 2, "only the newest and one older snapshot are kept")
        let newest = try #require(try files.loadNewest())
        #expect(newest.metadata.index == 30 && newest.metadata.confState.learners == [4])
        #expect(newest.data == Array("state-30".utf8))

        let path = files.path(term: 2, index: 30)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[20] ^= 0x04
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let error = #expect(throws: StorageError.self) { _ = try files.loadNewest() }
        #expect(error.map { "\($0)".contains(path) && "\($0)".contains("checksum mismatch") } == true)
    }

    @Test func storageRefusesALogCompactedBeyondItsSnapshot() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let (storage, _, _) = try RaftStorage.open(directory: dir)
            try storage.wal.append(entries: Self.entries(1...20), hardState: HardState(term: 1, commit: 20), sync: true)
            try storage.saveSnapshot(Snapshot(metadata: SnapshotMetadata(index: 15, term: 1, confState: ConfState(voters: [1])),
                                              data: [1, 2, 3]), compactTo: 15)
        }
        let (_, recovered, _) = try RaftStorage.open(directory: dir)
        #expect(recovered.snapshot.metadata.index == 15)
        #expect(recovered.entries == Self.entries(16...20))
        // Losing the snapshot file must not be papered over.
        for f in try FileManager.default.contentsOfDirectory(atPath: dir + "/snap") {
            try FileManager.default.removeItem(atPath: dir + "/snap/" + f)
        }
        #expect(throws: StorageError.self) { _ = try RaftStorage.open(directory: dir) }
    }
}
