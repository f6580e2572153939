import SwarmAPI
@testable import SwarmStore

enum Fixtures {
    static func service(_ id: String, name: String) -> SwarmService {
        var s = SwarmService()
        s.id = id
        s.spec.annotations.name = name
        return s
    }

    static func task(_ id: String, service: String, node: String = "", slot: UInt64 = 1,
                     desired: SwarmTaskState = .running, padding: Int = 0) -> SwarmTask {
        var t = SwarmTask()
        t.id = id
        t.serviceID = service
        t.nodeID = node
        t.slot = slot
        t.desiredState = desired
        if padding > 0 { t.status.message = String(repeating: "x", count: padding) }
        return t
    }

    static func node(_ id: String, hostname: String, role: SwarmNodeSpec.Role = .worker,
                     availability: SwarmNodeSpec.Availability = .active) -> SwarmNode {
        var n = SwarmNode()
        n.id = id
        n.role = role
        n.description_p.hostname = hostname
        n.spec.availability = availability
        return n
    }

    /// A clock that advances one second per reading.
    final class Clock: Sendable {
        let now = Mutex(Int64(1_000_000_000))
        func read() -> Int64 { now.withLock { $0 += 1_000_000_000; return $0 } }
    }
}

import Synchronization
