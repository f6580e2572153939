/// "host:port" addresses, as every flag and API field writes them.
public enum NetworkAddress {
    /// Splits "host:port" (an IPv6 host may be bracketed). An empty host means 127.0.0.1.
    public static func split(_ addr: String) -> (host: String, port: Int)? {
        guard let colon = addr.lastIndex(of: ":"), let port = Int(addr[addr.index(after: colon)...]),
              (0...65535).contains(port) else { return nil }
        var host = String(addr[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host.isEmpty ? "127.0.0.1" : host, port)
    }
}

/// Names of gRPC metadata keys the cluster's services share.
public enum SwarmMetadataKey {
    /// On an `unavailable` error from a manager that is not the leader: the leader's
    /// address, when known, so that an agent goes there next.
    public static let leaderAddress = "swarm-leader-addr"
}
