import Foundation
import Logging
import SwarmAPI
import SwarmCA
import SwarmManager
import SwarmRaftNode
import SwarmStore
import SwiftProtobuf
import Synchronization
import Testing

/// A manager that restarts replays its Raft log into an empty store, so the cluster object
/// passes through every state it had. The autolock keeper must not follow those: it would
/// write the keys in the clear (autolock was off once) or seal them with a retired key.
@Suite struct AutolockReplayTests {
    final class Notices: LogHandler, @unchecked Sendable {
        let lines = Mutex<[String]>([])
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) { lines.withLock { $0.append("\(event.message)") } }
    }

    static func config(_ root: String) -> RaftNodeConfig {
        var config = RaftNodeConfig(stateDir: root + "/raft", advertiseAddr: "127.0.0.1:1")
        config.tickInterval = .milliseconds(10)
        return config
    }

    static func setCluster(_ node: RaftNode, key: UnlockKey?, create: Bool = false) async throws {
        try await node.store.update { tx in
            var c = create ? SwarmCluster.with { $0.id = "default"; $0.spec.annotations.name = "default" }
                           : try #require(tx.get(SwarmCluster.self, id: "default"))
            c.spec.encryptionConfig.autoLockManagers = key != nil
            c.unlockKey = key?.description ?? ""
            if create { try tx.create(c) } else { try tx.update(c) }
        }
    }

    @Test func aRestartedManagerKeepsItsKeysSealedWhileItReplaysItsLog() async throws {
        let root = NSTemporaryDirectory() + "swarm-autolock-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let (first, second, third) = (UnlockKey(), UnlockKey(), UnlockKey())

        // The history: autolock off, then on with the first key, then rotated to the second.
        do {
            let node = try RaftNode(config: Self.config(root))
            node.start()
            for await isLeader in node.leadershipChanges() where isLeader { break }
            try await Self.setCluster(node, key: nil, create: true)
            try await Self.setCluster(node, key: first)
            try await Self.setCluster(node, key: second)
            node.stop()
        }
        let credentials = try RootCA.create().credentials(for: NodeIdentity(nodeID: "m1", role: .manager, clusterID: "c1"),
                                                          validity: 3600, directory: root + "/certificates")
        let dataKey = DataCipher()
        try Autolock.set(second, credentials: credentials, dataKey: dataKey, stateDir: root)

        // Restarted: the keeper runs before the log is replayed.
        let node = try RaftNode(config: Self.config(root))
        let notices = Notices()
        let logger = Logger(label: "autolock") { _ in notices }
        let keeper = Task { await Autolock.keep(node: node, credentials: credentials, dataKey: dataKey, stateDir: root, logger: logger) }
        defer { keeper.cancel(); node.stop() }
        try await Task.sleep(for: .milliseconds(200))
        node.start()
        // Leadership is signalled once the log is applied; the keeper polls every 50 ms.
        for await isLeader in node.leadershipChanges() where isLeader { break }
        try await Task.sleep(for: .milliseconds(300))
        #expect(notices.lines.withLock { $0 }.isEmpty, "the replay changed the sealing: \(notices.lines.withLock { $0 })")
        #expect(credentials.sealing?.description == second.description)
        let keyFile = try String(contentsOfFile: root + "/certificates/" + NodeCredentials.keyFile, encoding: .utf8)
        #expect(SealedFile.isSealed(keyFile))
        #expect(try SealedFile.open(keyFile, with: second, what: "the node key").contains("PRIVATE KEY"))

        // A rotation after the replay is still followed.
        try await Self.setCluster(node, key: third)
        let until = Date().addingTimeInterval(20)
        while credentials.sealing?.description != third.description, Date() < until {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(credentials.sealing?.description == third.description)
        #expect(notices.lines.withLock { $0 } == ["autolock: this manager's keys are sealed with the cluster's unlock key"])
        // The data key file opens with the third key only, and holds the same data key.
        #expect(throws: (any Error).self) { try DataKeyFile.loadOrCreate(Autolock.dataKeyPath(root), unlockKey: second) }
        let reopened = try DataKeyFile.loadOrCreate(Autolock.dataKeyPath(root), unlockKey: third)
        #expect(try reopened.open(dataKey.seal([1, 2, 3])) == [1, 2, 3])
    }
}
