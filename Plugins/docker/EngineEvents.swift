import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import SwarmPluginKit
import Synchronization

/// What the executor knows of each task's container, kept current by the engine's events
/// stream (`GET /events`, container events of containers labelled with a task), not by
/// polling: `die` records the exit code, `destroy` a container removed behind the node's
/// back, `health_status` the engine's health verdict. Each change is passed on to the
/// host through the ``TaskNotifier``. While the stream is down (the engine restarts), it
/// reconnects every second; on reconnecting it inspects each container it follows once,
/// so that no exit is missed.
final class EngineEvents: Sendable {
    struct Container: Sendable {
        var id: String
        var pid: Int32 = 0
        var exit: Int32?
        var health: ExecHealth = .none
        /// Why it is unhealthy, or how it ended.
        var message = ""
    }

    let engine: DockerEngine
    let notifier: TaskNotifier
    /// The followed containers, by task ID.
    private let containers = Mutex<[String: Container]>([:])
    /// Whether the stream is connected now, waited on through `connected`.
    private let isConnected = Mutex(false)
    private let connected = NSCondition()
    /// Signalled whenever a container's state changes, for ``waitForExit(_:upTo:)``.
    private let changed = NSCondition()

    init(engine: DockerEngine, notifier: TaskNotifier) {
        self.engine = engine
        self.notifier = notifier
    }

    /// Whether the stream was started: on the first task, so that a node that never runs
    /// a container (a manager) never connects.
    private let started = Mutex(false)

    // MARK: The executor's side

    /// Follows `taskID`'s container from now on.
    func follow(_ taskID: String, _ container: Container) {
        containers.withLock { $0[taskID] = container }
    }

    func forget(_ taskID: String) {
        containers.withLock { _ = $0.removeValue(forKey: taskID) }
    }

    func container(_ taskID: String) -> Container? { containers.withLock { $0[taskID] } }

    func setPid(_ taskID: String, _ pid: Int32) {
        containers.withLock { $0[taskID]?.pid = pid }
    }

    /// Waits until the stream is connected (so that no exit after this call is missed);
    /// throws when it does not connect within `timeout`.
    func awaitConnected(upTo timeout: TimeInterval = 10) throws {
        let first = started.withLock { s -> Bool in
            defer { s = true }
            return !s
        }
        if first {
            Task.detached { [self] in await self.run() }
        }
        let deadline = Date(timeIntervalSinceNow: timeout)
        connected.lock()
        defer { connected.unlock() }
        while !isConnected.withLock({ $0 }) {
            if !connected.wait(until: deadline) {
                throw ExecutorError("cannot follow the docker engine's events at \(engine.socketPath)")
            }
        }
    }

    /// Waits until the task's container has exited (or `timeout` passed); returns whether it has.
    func waitForExit(_ taskID: String, upTo timeout: TimeInterval) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        changed.lock()
        defer { changed.unlock() }
        while containers.withLock({ $0[taskID].map { $0.exit == nil } ?? false }) {
            if !changed.wait(until: deadline) { break }
        }
        return containers.withLock { $0[taskID]?.exit != nil }
    }

    /// Records a change of a followed container and tells the host. Ignores tasks not followed.
    func update(_ taskID: String, _ body: (inout Container) -> Void) {
        let known = containers.withLock { c -> Bool in
            guard var entry = c[taskID] else { return false }
            body(&entry)
            c[taskID] = entry
            return true
        }
        guard known else { return }
        changed.lock()
        changed.broadcast()
        changed.unlock()
        notifier.changed(taskID)
    }

    /// Reads a container's state once (`GET /containers/{id}/json`) into the record: after
    /// a gap in the stream, when adopting, and to learn an exit's details.
    func inspect(_ taskID: String) {
        guard let c = container(taskID) else { return }
        guard let (status, data) = try? engine.call(.GET, "/containers/\(c.id)/json") else { return }
        if status == 404 {
            update(taskID) { if $0.exit == nil { $0.exit = -1; $0.message = "the container was removed behind the node's back" } }
            return
        }
        guard status == 200 else { return }
        let state = DockerEngine.object(data)["State"] as? [String: Any] ?? [:]
        let running = (state["Running"] as? Bool ?? false) || (state["Restarting"] as? Bool ?? false)
        let started = (state["StartedAt"] as? String).map { !$0.hasPrefix("0001-") } ?? false
        let health = Self.health(state["Health"] as? [String: Any])
        update(taskID) { entry in
            if let health { (entry.health, entry.message) = health }
            if started && !running {
                if entry.exit == nil { entry.exit = Int32(state["ExitCode"] as? Int ?? 0) }
                if state["OOMKilled"] as? Bool == true { entry.message = "OOM-killed" }
            }
        }
    }

    /// The health and its last output, from the `State.Health` of an inspect.
    static func health(_ h: [String: Any]?) -> (ExecHealth, String)? {
        guard let h, let status = h["Status"] as? String else { return nil }
        let output = ((h["Log"] as? [[String: Any]])?.last?["Output"] as? String ?? "")
            .trimmingCharacters(in: .whitespacesAndNewlines)
        switch status {
        case "healthy": return (.healthy, "")
        case "unhealthy": return (.unhealthy, String(output.prefix(200)))
        case "starting": return (.starting, "")
        default: return nil
        }
    }

    // MARK: The stream

    private func setConnected(_ value: Bool) {
        isConnected.withLock { $0 = value }
        connected.lock()
        connected.broadcast()
        connected.unlock()
    }

    /// Follows the stream for the life of the process, reconnecting after a gap.
    private func run() async {
        var since: String?
        while true {
            do {
                try await stream(since: &since)
            } catch {
                setConnected(false)
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    private func stream(since: inout String?) async throws {
        let filters = #"{"type":["container"],"label":["com.swift-swarm.task.id"]}"#
        var query = [URLQueryItem(name: "filters", value: filters)]
        if let since { query.append(URLQueryItem(name: "since", value: since)) }
        var components = URLComponents()
        components.queryItems = query
        let path = "/\(DockerEngine.apiVersion)/events?\(components.percentEncodedQuery ?? "")"
        guard let url = URL(httpURLWithSocketPath: engine.socketPath, uri: path) else { return }
        var request = HTTPClientRequest(url: url.absoluteString)
        request.headers.replaceOrAdd(name: "Host", value: "docker")
        let response = try await engine.client.execute(request, timeout: .hours(24 * 365 * 10))
        guard response.status.code == 200 else { return }
        setConnected(true)
        // Exits while the stream was down: look at every followed container once.
        if since != nil {
            let followed = containers.withLock { Array($0.keys) }
            for id in followed where container(id)?.exit == nil { offPool { self.inspect(id) } }
        }
        var pending = Data()
        for try await buffer in response.body {
            pending.append(contentsOf: buffer.readableBytesView)
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = pending[pending.startIndex..<newline]
                pending = Data(pending[pending.index(after: newline)...])
                guard let event = try? JSONSerialization.jsonObject(with: line) as? [String: Any] else { continue }
                if let nanos = event["timeNano"] as? Int64 ?? (event["timeNano"] as? Int).map(Int64.init) {
                    since = "\(nanos / 1_000_000_000).\(String(format: "%09d", nanos % 1_000_000_000))"
                }
                handle(event)
            }
        }
        throw ExecutorError("the engine closed its events stream")
    }

    /// One container event.
    private func handle(_ event: [String: Any]) {
        guard let actor = event["Actor"] as? [String: Any],
              let attributes = actor["Attributes"] as? [String: String],
              let taskID = attributes["com.swift-swarm.task.id"],
              let action = event["Action"] as? String ?? event["status"] as? String else { return }
        switch action {
        case "die":
            let code = Int32(attributes["exitCode"] ?? "") ?? -1
            if code == 137 {
                // Maybe an OOM kill: only the container's state says so, and the exit is
                // recorded with that note (or without, if the engine does not answer).
                offPool {
                    self.inspect(taskID)
                    self.update(taskID) { if $0.exit == nil { $0.exit = code } }
                }
            } else {
                update(taskID) { if $0.exit == nil { $0.exit = code } }
            }
        case "destroy":
            update(taskID) { if $0.exit == nil { $0.exit = -1; $0.message = "the container was removed behind the node's back" } }
        case "oom":
            update(taskID) { $0.message = "OOM-killed" }
        case let a where a.hasPrefix("health_status"):
            if a.hasSuffix("unhealthy") {
                offPool {
                    self.inspect(taskID)  // for the failing check's output
                    self.update(taskID) { $0.health = .unhealthy }
                }
            } else if a.hasSuffix("healthy") {
                update(taskID) { ($0.health, $0.message) = (.healthy, "") }
            }
        default:
            break
        }
    }

    /// Runs a blocking engine call off the cooperative pool.
    private func offPool(_ body: @escaping @Sendable () -> Void) {
        DispatchQueue.global().async(execute: body)
    }
}
