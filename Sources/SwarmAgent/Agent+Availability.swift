import Logging
import SwarmAPI
import SwarmConcurrency
import Synchronization
import SwarmPluginHost

/// Which executors can run tasks now. The node description the agent sends when it opens
/// a session names each executor it loaded, with why it cannot run tasks when it cannot
/// (a docker engine that does not answer). The agent asks its executors at start and every
/// ``Agent/availabilityPeriod``; when an answer changes, it opens a new session with the
/// new description (as SwarmKit's agent does when its node description changes), so the
/// scheduler stops or starts placing that executor's tasks here.
extension Agent {
    /// How often the agent asks its executors whether they can run tasks.
    static let availabilityPeriod: Duration = .seconds(5)

    /// `description` with each executor's current availability.
    static func describing(_ description: SwarmNodeDescription, unavailable: [String: String]) -> SwarmNodeDescription {
        var d = description
        for i in d.plugins.indices where d.plugins[i].kind == "executor" {
            d.plugins[i].unavailable = unavailable[d.plugins[i].name] ?? ""
        }
        return d
    }

    /// Asks every executor whether it can run tasks, each on a thread of its own (an
    /// executor may take a few seconds to say no). Returns why, for those that cannot.
    func unavailableExecutors() async -> [String: String] {
        let clients = plugins.names(.executor).compactMap { plugins.executor($0) }.map(ExecutorClient.init)
        return await withTaskGroup(of: (String, String?).self) { group in
            for client in clients {
                group.addTask {
                    let why = try? await ExecutorThreads.run("available \(client.executor.record.name)") { client.unavailable() }
                    return (client.executor.record.name, why ?? nil)
                }
            }
            var out: [String: String] = [:]
            for await (name, why) in group { if let why { out[name] = why } }
            return out
        }
    }

    /// Updates the description to the executors' current availability; returns whether
    /// it changed (and logs the change).
    @discardableResult
    func refreshAvailability() async -> Bool {
        let unavailable = await unavailableExecutors()
        let next = Self.describing(config.description, unavailable: unavailable)
        let before = description.withLock { d -> SwarmNodeDescription in
            defer { d = next }
            return d
        }
        guard before != next else { return false }
        for p in next.plugins where p.kind == "executor" {
            let was = before.plugins.first { $0.name == p.name && $0.kind == p.kind }?.unavailable ?? ""
            if was == p.unavailable { continue }
            if p.unavailable.isEmpty {
                logger.info("executor \(p.name) is available")
            } else {
                logger.warning("executor \(p.name) cannot run tasks: \(p.unavailable)")
            }
        }
        return true
    }

    /// Asks the executors every period; a change ends the current session, and the next
    /// one carries the new description.
    func watchAvailability() async {
        while (try? await Task.sleep(for: Self.availabilityPeriod)) != nil {
            if await refreshAvailability() { descriptionChanged.ring() }
        }
    }
}
