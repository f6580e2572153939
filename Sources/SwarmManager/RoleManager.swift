import Logging
import SwarmAPI
import SwarmRaft
import SwarmRaftNode
import SwarmStore
import SwiftProtobuf

/// Keeps node roles and Raft membership in step, on the leader (SwarmKit's role manager):
/// records which nodes are managers (with their Raft ID, address, leadership and
/// reachability), and removes from the Raft group the managers whose desired role became
/// worker, one at a time and only while a quorum remains. Promotion is carried out by the
/// node itself, which joins the group with the manager token its session hands it.
public struct RoleManager: Sendable {
    let node: any ManagerMembership
    let logger: Logger

    public init(node: any ManagerMembership, logger: Logger = Logger(label: "swarm.roles")) {
        self.node = node
        self.logger = logger
    }

    /// Reconciles at once, then whenever the nodes in the store or the Raft group's view
    /// change (its members, leader or reachability), until cancelled.
    public func run() async {
        let (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let store = node.store
        let changes = node.groupChanges()
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in changes { wake.yield() }
            }
            group.addTask {
                while !Task.isCancelled {
                    let (_, watcher) = store.viewAndWatch(WatchFilter(tables: [.nodes]))
                    do {
                        for try await message in watcher { if case .event = message { wake.yield() } }
                    } catch {
                        wake.yield()  // fell behind: read everything again
                    }
                    watcher.cancel()
                }
            }
            wake.yield()
            for await _ in wakes {
                if Task.isCancelled { break }
                await reconcile()
            }
            group.cancelAll()
        }
    }

    /// One pass: observed roles first, then at most one demotion.
    public func reconcile() async {
        let status = node.status
        guard status.role == .leader else { return }
        let raftIDs = Dictionary(status.memberNodeIDs.map { ($0.value, $0.key) }) { a, _ in a }
        do {
            try await node.store.update { tx in
                for n in tx.find(SwarmNode.self) {
                    var m = n
                    if let rid = raftIDs[n.id], status.members[rid] != nil {
                        m.role = .manager
                        m.managerStatus = .with {
                            $0.raftID = rid
                            $0.addr = status.members[rid] ?? ""
                            $0.leader = rid == status.leader
                            $0.reachability = node.isReachable(rid) ? .reachable : .unreachable
                        }
                    } else if n.role == .manager {
                        m.role = .worker
                        m.managerStatus = SwarmManagerStatus()
                    }
                    if m != n { try tx.update(m) }
                }
            }
        } catch {
            logger.debug("recording manager roles: \(error)")
        }
        for n in node.store.view().find(SwarmNode.self) where n.spec.desiredRole == .worker {
            guard let rid = raftIDs[n.id], status.members[rid] != nil else { continue }
            if rid == status.id {
                // The leader cannot remove itself: hand leadership to a reachable voter first.
                if let next = status.voters.first(where: { $0 != rid && node.isReachable($0) }) {
                    logger.info("node \(n.id) is demoted: handing leadership over first")
                    node.transferLeadership(to: next)
                }
                return
            }
            do {
                try await node.removeMember(rid)
                logger.info("node \(n.id) is demoted: removed it from the managers")
            } catch {
                logger.warning("cannot demote node \(n.id) yet: \(error)")
            }
            return
        }
    }
}
