import GRPCCore
import GRPCNIOTransportHTTP2
import SwarmAPI
import SwarmCA
import SwarmRPC

// The client side of the control API, for `swarmctl` and for managers that forward calls:
// the generated client (`SwarmControl.Client`, from SwarmRPC) and the connection helper.

/// Runs `body` with a control client connected to `addr` ("host:port", or "unix:PATH"),
/// over TCP secured as `security` says (a manager's remote API needs mutual TLS with a
/// manager certificate).
public func withControlClient<R: Sendable>(_ addr: String, security: ClientSecurity = .plaintext,
                                           _ body: (SwarmControl.Client<HTTP2ClientTransport.Posix>) async throws -> R) async throws -> R {
    let transport: HTTP2ClientTransport.Posix
    if addr.hasPrefix("unix:") {
        transport = try .http2NIOPosix(target: .unixDomainSocket(path: String(addr.dropFirst(5))), transportSecurity: .plaintext)
    } else {
        guard let (host, port) = NetworkAddress.split(addr) else {
            throw RPCError(code: .invalidArgument, message: "bad address \(addr)")
        }
        transport = try security.transport(host: host, port: port)
    }
    return try await withGRPCClient(transport: transport) {
        try await body(SwarmControl.Client(wrapping: $0))
    }
}
