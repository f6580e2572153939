import ArgumentParser
import SwarmAPI

/// The flags of container tasks that `service create` and `service update` share. On
/// update, a flag given replaces that part of the spec (all of its mounts, or all of its
/// published ports).
struct ContainerFlags: ParsableArguments {
    @Option(parsing: .singleValue, help: "Mount: type=bind|volume|tmpfs,source=...,target=...[,readonly][,tmpfs-size=64MiB] (repeatable)")
    var mount: [String] = []
    @Flag(help: "Remove every mount (service update)") var clearMounts = false
    @Option(parsing: .singleValue, help: "Publish a port on the task's node (host mode): PUBLISHED:TARGET[/tcp|udp] (repeatable)")
    var publish: [String] = []
    @Flag(help: "Remove every published port (service update)") var clearPorts = false
    @Option(help: "User the container runs as: name or uid, optionally :group") var user: String?
    @Option(help: "Signal that asks the container to stop, e.g. SIGINT") var stopSignal: String?

    func apply(to spec: inout SwarmServiceSpec) throws {
        do {
            if clearPorts { spec.task.ports = [] }
            if !publish.isEmpty { spec.task.ports = try publish.map(ContainerOptions.port) }
            let containerOnly = !mount.isEmpty || clearMounts || user != nil || stopSignal != nil
            guard containerOnly else { return }
            guard case .container(var c)? = spec.task.runtime else {
                throw ValidationError("--mount, --user and --stop-signal apply to container tasks (--image) only")
            }
            if clearMounts { c.mounts = [] }
            if !mount.isEmpty { c.mounts = try mount.map(ContainerOptions.mount) }
            if let user { c.user = user }
            if let stopSignal { c.stopSignal = stopSignal }
            spec.task.container = c
        } catch let e as ContainerOptions.ParseError {
            throw ValidationError(e.description)
        }
    }
}
