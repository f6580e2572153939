import Foundation
import Testing

/// swarmd's parts as services of one group: a graceful stop on SIGTERM, and a part that
/// cannot start ends the node with its error instead of leaving it half up.
@Suite(.serialized) struct LifecycleTests {
    @Test func sigtermStopsAManagerGracefullyAndRemovesItsSocket() async throws {
        let c = try SwarmdCluster()
        try c.startManager()
        _ = try await c.readyCluster()
        #expect(FileManager.default.fileExists(atPath: c.controlSocket))
        #expect(c.terminate("manager") == 0, "\(c.logTail("manager"))")
        let log = c.logTail("manager", lines: 200)
        // Every part stopped, in the group's order: the leader's loops before the Raft
        // member, the Raft member before the servers.
        let order = ["leader components stopped", "raft node stopped", "remote API on \(c.managerAddr) stopped"]
        let positions = order.map { log.range(of: $0)?.lowerBound }
        #expect(positions.allSatisfy { $0 != nil }, "\(log)")
        if positions.allSatisfy({ $0 != nil }) {
            #expect(positions[0]! < positions[1]! && positions[1]! < positions[2]!, "\(log)")
        }
        #expect(!FileManager.default.fileExists(atPath: c.controlSocket), "the control socket is removed")
    }

    @Test func aManagerWhoseRemoteAPICannotListenExitsWithTheReason() async throws {
        // Hold the port, so that the manager cannot listen on it.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd) }
        let c = try SwarmdCluster()
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(c.managerPort).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        try #require(bound == 0 && listen(fd, 1) == 0)
        try c.startManager()
        try await c.waitFor("the manager to give up", seconds: 30) { !c.isRunning("manager") }
        let status = c.processes["manager"].map { SwarmdCluster.reap($0) } ?? -1
        #expect(status == 1, "\(c.logTail("manager"))")
        #expect(c.logTail("manager").contains("Address already in use"), "\(c.logTail("manager"))")
    }
}
