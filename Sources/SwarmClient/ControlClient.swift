import GRPCCore
import GRPCNIOTransportHTTP2
import SwarmAPI
import SwarmRPC

// The client side of the control API, for `swarmctl` and for managers that forward calls:
// the generated client (`SwarmControl.Client`, from SwarmRPC) and the connection helper.

/// Runs `body` with a control client connected to `addr` ("host:port", or "unix:PATH").
public func withControlClient<R: Sendable>(_ addr: String,
                                           _ body: (SwarmControl.Client<HTTP2ClientTransport.Posix>) async throws -> R) async throws -> R {
    let target: any ResolvableTarget
    if addr.hasPrefix("unix:") {
        target = .unixDomainSocket(path: String(addr.dropFirst(5)))
    } else {
        guard let (host, port) = NetworkAddress.split(addr) else {
            throw RPCError(code: .invalidArgument, message: "bad address \(addr)")
        }
        target = .dns(host: host, port: port)
    }
    return try await withGRPCClient(transport: try .http2NIOPosix(target: target, transportSecurity: .plaintext)) {
        try await body(SwarmControl.Client(wrapping: $0))
    }
}
