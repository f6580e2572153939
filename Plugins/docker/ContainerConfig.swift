import Foundation
import SwarmAPI
import SwarmTaskFiles

/// The body of `POST /containers/create` for a task: the spec's command, args, env,
/// directory, user, labels naming the task, service, slot and node, CPU and memory limits
/// and reservations, GPUs, mounts, host-mode published ports, health check, and stop
/// signal and grace period.
enum ContainerConfig {
    /// Where a container finds its secrets and configs (the task's private tmpfs
    /// directories, bound read-only), as Docker's own secrets are.
    static let secretsTarget = "/run/secrets"
    static let configsTarget = "/run/configs"

    static func body(_ t: SwarmTask, _ spec: SwarmContainerSpec, files: TaskFiles.Written = .init()) -> [String: Any] {
        var env = ["SWARM_TASK_ID=\(t.id)", "SWARM_TASK_SLOT=\(t.slot)", "SWARM_SERVICE_ID=\(t.serviceID)",
                   "SWARM_SERVICE_NAME=\(t.serviceAnnotations.name)", "SWARM_NODE_ID=\(t.nodeID)"]
        var host: [String: Any] = [:]
        let limits = t.spec.resources.limits
        let reservations = t.spec.resources.reservations
        if limits.nanoCpus > 0 { host["NanoCpus"] = limits.nanoCpus }
        if limits.memoryBytes > 0 { host["Memory"] = limits.memoryBytes }
        if reservations.memoryBytes > 0 { host["MemoryReservation"] = reservations.memoryBytes }
        if reservations.nanoCpus > 0 { host["CpuShares"] = max(2, Int(reservations.nanoCpus * 1024 / 1_000_000_000)) }
        if !t.assignedGpus.isEmpty {
            let ids = t.assignedGpus.map(\.uuid)
            host["DeviceRequests"] = [["Driver": "nvidia", "DeviceIDs": ids, "Capabilities": [["gpu"]]]]
            env += ["NVIDIA_VISIBLE_DEVICES=\(ids.joined(separator: ","))"]
        }
        var mounts = spec.mounts.map(mount)
        if let dir = files.secretsDir {
            mounts.append(["Type": "bind", "Source": dir, "Target": secretsTarget, "ReadOnly": true])
            env.append("SWARM_SECRETS_DIR=\(secretsTarget)")
        }
        if let dir = files.configsDir {
            mounts.append(["Type": "bind", "Source": dir, "Target": configsTarget, "ReadOnly": true])
            env.append("SWARM_CONFIGS_DIR=\(configsTarget)")
        }
        if !mounts.isEmpty { host["Mounts"] = mounts }
        var exposed: [String: Any] = [:]
        var bindings: [String: [[String: String]]] = [:]
        for p in t.spec.ports {
            let key = "\(p.targetPort)/\(p.protocol.isEmpty ? "tcp" : p.protocol)"
            exposed[key] = [String: String]()
            if p.publishedPort != 0 { bindings[key, default: []].append(["HostPort": String(p.publishedPort)]) }
        }
        if !bindings.isEmpty { host["PortBindings"] = bindings }
        var labels = spec.labels
        labels["com.swift-swarm.task.id"] = t.id
        labels["com.swift-swarm.service.id"] = t.serviceID
        labels["com.swift-swarm.service.name"] = t.serviceAnnotations.name
        labels["com.swift-swarm.task.slot"] = String(t.slot)
        labels["com.swift-swarm.node.id"] = t.nodeID
        var body: [String: Any] = ["Image": spec.image, "Env": env + spec.env, "Labels": labels, "HostConfig": host]
        if !exposed.isEmpty { body["ExposedPorts"] = exposed }
        if !spec.command.isEmpty { body["Entrypoint"] = spec.command }
        if !spec.args.isEmpty { body["Cmd"] = spec.args }
        if !spec.dir.isEmpty { body["WorkingDir"] = spec.dir }
        if !spec.user.isEmpty { body["User"] = spec.user }
        if !spec.stopSignal.isEmpty { body["StopSignal"] = spec.stopSignal }
        if spec.stopGracePeriod > 0 { body["StopTimeout"] = max(1, Int(spec.stopGracePeriod / 1_000_000_000)) }
        if let check = healthcheck(t.spec.healthcheck) { body["Healthcheck"] = check }
        return body
    }

    static func mount(_ m: SwarmMount) -> [String: Any] {
        var out: [String: Any] = ["Target": m.target, "ReadOnly": m.readOnly]
        switch m.type {
        case .mountBind:
            out["Type"] = "bind"
            out["Source"] = m.source
        case .mountVolume:
            out["Type"] = "volume"
            if !m.source.isEmpty { out["Source"] = m.source }
        case .mountTmpfs:
            out["Type"] = "tmpfs"
            if m.tmpfsSizeBytes > 0 { out["TmpfsOptions"] = ["SizeBytes": m.tmpfsSizeBytes] }
        case .UNRECOGNIZED(let v):
            out["Type"] = "unknown-\(v)"  // refused by validation before it gets here
        }
        return out
    }

    /// The engine's form of the spec's health check: `CMD` or `CMD-SHELL` first (a bare
    /// argv becomes `CMD`), durations in nanoseconds. Nil when there is none.
    static func healthcheck(_ h: SwarmHealthConfig) -> [String: Any]? {
        guard !h.test.isEmpty else { return nil }
        let test = h.test.first == "CMD" || h.test.first == "CMD-SHELL" ? h.test : ["CMD"] + h.test
        var out: [String: Any] = ["Test": test, "Interval": h.interval, "Retries": Int(h.retries)]
        if h.timeout > 0 { out["Timeout"] = h.timeout }
        if h.startPeriod > 0 { out["StartPeriod"] = h.startPeriod }
        return out
    }
}
