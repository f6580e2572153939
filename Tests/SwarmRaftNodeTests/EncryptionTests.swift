import Foundation
import SwarmCA
import SwarmRaft
@testable import SwarmRaftNode
import Testing

/// The log and snapshots sealed with a data key: they read back with it, say clearly
/// when the key is wrong or missing, and hold nothing in the clear.
@Suite struct EncryptionTests {
    static let marker = Array("a-service-name-nobody-else-uses".utf8)

    static func entries(_ range: ClosedRange<UInt64>) -> [Entry] {
        range.map { Entry(term: 1, index: $0, data: marker + [UInt8($0)]) }
    }

    static func contains(_ dir: String, _ needle: [UInt8]) -> Bool {
        let files = FileManager.default.enumerator(atPath: dir)?.compactMap { $0 as? String } ?? []
        return files.contains { f in
            guard let d = FileManager.default.contents(atPath: dir + "/" + f) else { return false }
            return d.range(of: Data(needle)) != nil
        }
    }

    @Test func sealedLogAndSnapshotsReadBackOnlyWithTheirKey() throws {
        let dir = StorageTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let key = DataCipher()
        do {
            let (storage, _, _) = try RaftStorage.open(directory: dir, cipher: key)
            try storage.wal.append(entries: Self.entries(1...6), hardState: HardState(term: 1, vote: 1, commit: 6), sync: true)
            let snap = Snapshot(metadata: SnapshotMetadata(index: 4, term: 1, confState: ConfState(voters: [1], learners: [])),
                                data: Self.marker + [9])
            try storage.saveSnapshot(snap, compactTo: 3)
        }
        #expect(!Self.contains(dir, Self.marker))
        let (_, recovered, _) = try RaftStorage.open(directory: dir, cipher: key)
        #expect(recovered.snapshot.data == Self.marker + [9])
        #expect(recovered.entries.map(\.data) == Self.entries(5...6).map(\.data))
        // Another key, or none: an error that says so, naming the file.
        for wrong in [DataCipher(), nil] {
            do {
                _ = try RaftStorage.open(directory: dir, cipher: wrong)
                Issue.record("opened with the wrong key")
            } catch {
                #expect(error.description.contains("data key"), "\(error)")
            }
        }
    }

    @Test func aLogWrittenInTheClearStillReads() throws {
        let dir = StorageTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let (wal, _) = try WAL.open(directory: dir + "/wal")
            try wal.append(entries: Self.entries(1...3), hardState: nil, sync: true)
        }
        #expect(Self.contains(dir, Self.marker))
        let key = DataCipher()
        do {
            let (wal, r) = try WAL.open(directory: dir + "/wal", cipher: key)
            #expect(r.entries == Self.entries(1...3))
            try wal.append(entries: Self.entries(4...5), hardState: nil, sync: true)
        }
        let (_, both) = try WAL.open(directory: dir + "/wal", cipher: key)
        #expect(both.entries == Self.entries(1...5))
        #expect(throws: StorageError.self) { try WAL.open(directory: dir + "/wal") }
    }

    @Test func dataKeyFilesAreCheckedAndKept() throws {
        let dir = StorageTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/keys/swarm-data.key"
        let made = try DataKeyFile.loadOrCreate(path)
        #expect(try DataKeyFile.loadOrCreate(path).keyBytes == made.keyBytes)
        var st = stat()
        #expect(stat(path, &st) == 0 && st.st_mode & 0o777 == 0o600)
        try Data("garbage".utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: CAError.self) { try DataKeyFile.loadOrCreate(path) }
    }
}
