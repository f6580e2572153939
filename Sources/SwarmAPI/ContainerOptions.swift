/// The text forms of a container's mounts and published ports, as `swarmctl` takes them
/// (Docker's `--mount` and `--publish`), parsed into the spec's messages.
public enum ContainerOptions {
    /// A malformed `--mount` or `--publish` value, with what is wrong.
    public struct ParseError: Error, Sendable, CustomStringConvertible, Equatable {
        public let description: String
        public init(_ message: String) { description = message }
    }

    /// `type=bind|volume|tmpfs,source=...,target=...[,readonly][,tmpfs-size=64MiB]`
    /// (`src`/`dst`/`destination` and `ro` are accepted too; the type defaults to volume,
    /// as in Docker).
    public static func mount(_ text: String) throws(ParseError) -> SwarmMount {
        var m = SwarmMount()
        m.type = .mountVolume
        var target: String?
        for field in text.split(separator: ",", omittingEmptySubsequences: false) {
            let kv = field.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            let key = kv[0].trimmingWhitespace, value = kv.count > 1 ? kv[1] : nil
            switch key {
            case "type":
                switch value {
                case "bind": m.type = .mountBind
                case "volume": m.type = .mountVolume
                case "tmpfs": m.type = .mountTmpfs
                default: throw ParseError("mount \"\(text)\": type must be bind, volume or tmpfs")
                }
            case "source", "src":
                m.source = value ?? ""
            case "target", "dst", "destination":
                target = value ?? ""
            case "readonly", "ro":
                switch value {
                case nil, "1", "true": m.readOnly = true
                case "0", "false": m.readOnly = false
                default: throw ParseError("mount \"\(text)\": readonly must be true or false")
                }
            case "tmpfs-size":
                do { m.tmpfsSizeBytes = try Quantities.bytes(value ?? "") } catch {
                    throw ParseError("mount \"\(text)\": tmpfs-size: \(error)")
                }
            default:
                throw ParseError("mount \"\(text)\": unknown field \"\(key)\"")
            }
        }
        guard let target, !target.isEmpty else { throw ParseError("mount \"\(text)\": a target is required") }
        m.target = target
        try validate(m)
        return m
    }

    /// What the manager also checks: an absolute target; a bind needs an absolute source,
    /// a tmpfs none; a volume name has no slash.
    public static func validate(_ m: SwarmMount) throws(ParseError) {
        guard m.target.hasPrefix("/") else { throw ParseError("mount target \"\(m.target)\" must be an absolute path") }
        switch m.type {
        case .mountBind:
            guard m.source.hasPrefix("/") else { throw ParseError("bind mount at \(m.target): the source must be an absolute host path") }
        case .mountVolume:
            if m.source.contains("/") { throw ParseError("volume mount at \(m.target): \"\(m.source)\" is not a volume name") }
        case .mountTmpfs:
            if !m.source.isEmpty { throw ParseError("tmpfs mount at \(m.target): a tmpfs has no source") }
        case .UNRECOGNIZED(let v):
            throw ParseError("mount at \(m.target): unknown type \(v)")
        }
        if m.tmpfsSizeBytes < 0 || (m.tmpfsSizeBytes > 0 && m.type != .mountTmpfs) {
            throw ParseError("mount at \(m.target): a size applies to a tmpfs only, and must not be negative")
        }
    }

    /// `PUBLISHED:TARGET[/PROTOCOL]`, or `published=P,target=T[,protocol=udp][,mode=host]`.
    /// Ports are published in host mode (on the node that runs the task); `mode=ingress`
    /// is refused, as there is no routing mesh.
    public static func port(_ text: String) throws(ParseError) -> SwarmPortConfig {
        var p = SwarmPortConfig()
        if text.contains("=") {
            for field in text.split(separator: ",") {
                let kv = field.split(separator: "=", maxSplits: 1).map(String.init)
                guard kv.count == 2 else { throw ParseError("publish \"\(text)\": \"\(field)\" is not key=value") }
                switch kv[0] {
                case "published": p.publishedPort = try number(kv[1], text)
                case "target": p.targetPort = try number(kv[1], text)
                case "protocol": p.protocol = kv[1]
                case "mode":
                    guard kv[1] == "host" else {
                        throw ParseError("publish \"\(text)\": only mode=host is supported (there is no ingress routing mesh)")
                    }
                default: throw ParseError("publish \"\(text)\": unknown field \"\(kv[0])\"")
                }
            }
        } else {
            let slash = text.split(separator: "/", maxSplits: 1).map(String.init)
            let ports = slash[0].split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard ports.count == 2 else { throw ParseError("publish \"\(text)\": expected PUBLISHED:TARGET[/PROTOCOL]") }
            p.publishedPort = try number(ports[0], text)
            p.targetPort = try number(ports[1], text)
            if slash.count > 1 { p.protocol = slash[1] }
        }
        try validate([p])
        return p
    }

    /// What the manager also checks: ports in 1...65535 (published may be 0: exposed
    /// only), a known protocol, and no published port twice per protocol.
    public static func validate(_ ports: [SwarmPortConfig]) throws(ParseError) {
        var seen = Set<String>()
        for p in ports {
            guard (1...65535).contains(p.targetPort) else { throw ParseError("target port \(p.targetPort) is outside 1-65535") }
            guard p.publishedPort <= 65535 else { throw ParseError("published port \(p.publishedPort) is outside 1-65535") }
            guard ["", "tcp", "udp", "sctp"].contains(p.protocol) else {
                throw ParseError("port protocol \"\(p.protocol)\" must be tcp, udp or sctp")
            }
            let key = "\(p.publishedPort)/\(p.protocol.isEmpty ? "tcp" : p.protocol)"
            if p.publishedPort != 0 && !seen.insert(key).inserted { throw ParseError("port \(key) is published twice") }
        }
    }

    static func number(_ s: String, _ text: String) throws(ParseError) -> UInt32 {
        guard let n = UInt32(s) else { throw ParseError("publish \"\(text)\": \"\(s)\" is not a port number") }
        return n
    }
}

extension String {
    fileprivate var trimmingWhitespace: String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}
