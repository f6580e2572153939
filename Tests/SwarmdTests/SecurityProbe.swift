import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SwarmAPI
import SwarmCA
import SwarmManager
import SwarmRPC
import SwiftProtobuf
import Synchronization
import Testing

/// The security suites (CA, mTLS, renewal, rotation, autolock, secrets), one at a time:
/// each starts several swarmd processes, and together with the other suites they would
/// overload a 2-core machine.
@Suite(.serialized) enum SecuritySuites {}

/// Calls on a cluster's remote API as different callers: with no certificate, a
/// self-signed one, another cluster's, an expired one, a worker's or a manager's.
enum SecurityProbe {
    typealias Security = HTTP2ClientTransport.Posix.TransportSecurity

    /// TLS with no client certificate (the server's is not checked).
    static var noCertificate: Security {
        .tls(.init(certificateChain: [], privateKey: nil, serverCertificateVerification: .noVerification, trustRoots: .systemDefault))
    }

    /// Runs `body` on a client to `addr`; returns the RPC error it ended with (nil if none).
    static func call(_ addr: String, _ security: Security,
                     _ body: @Sendable (GRPCClient<HTTP2ClientTransport.Posix>) async throws -> Void) async -> RPCError? {
        let parts = addr.split(separator: ":")
        do {
            let transport = try HTTP2ClientTransport.Posix(target: .ipv4(address: String(parts[0]), port: Int(parts[1])!),
                                                           transportSecurity: security)
            try await withGRPCClient(transport: transport) { try await body($0) }
            return nil
        } catch let e as RPCError {
            return e
        } catch {
            return RPCError(code: .unknown, message: "\(error)")
        }
    }

    static var options: CallOptions {
        var o = CallOptions.defaults
        o.timeout = .seconds(10)
        o.waitForReady = false
        return o
    }

    /// The Raft API's Status call.
    static func raftStatus(_ addr: String, _ security: Security) async -> RPCError? {
        await call(addr, security) { _ = try await SwarmRaftTransport.Client(wrapping: $0).status(.init(), options: options) }
    }

    static func raftStatus(_ addr: String, _ security: ClientSecurity) async -> RPCError? {
        guard case let credentials? = security.credentials else { return await raftStatus(addr, Security.plaintext) }
        return await raftStatus(addr, credentials.clientSecurity())
    }

    /// The control API's ListNodes call.
    static func listNodes(_ addr: String, _ security: Security) async -> RPCError? {
        await call(addr, security) { _ = try await SwarmControl.Client(wrapping: $0).listNodes(.init(), options: options) }
    }

    /// Asks the CA for a certificate as a joining node does; the credentials, or the error.
    static func join(_ addr: String, token: String, nodeID: String = Identifiers.make(), role: NodeRole? = nil,
                     csr: String? = nil) async -> Result<NodeCredentials, RPCError> {
        let request: CertificateRequest
        do { request = try CertificateRequest(nodeID: nodeID, role: role) } catch { return .failure(RPCError(code: .internalError, message: "\(error)")) }
        let sentCSR = csr ?? request.csr
        let answer = Mutex<SwarmNodeCertificateResponse?>(nil)
        let security: Security
        do { security = try JoinSecurity(token: try JoinToken(parsing: token)).clientSecurity() } catch {
            return .failure(RPCError(code: .invalidArgument, message: "\(error)"))
        }
        if let e = await call(addr, security, { client in
            let r = try await SwarmCertificateAuthority.Client(wrapping: client).issueNodeCertificate(.with {
                $0.csr = Data(sentCSR.utf8)
                $0.token = token
            }, options: options)
            answer.withLock { $0 = r }
        }) { return .failure(e) }
        guard let r = answer.withLock({ $0 }) else { return .failure(RPCError(code: .internalError, message: "no answer")) }
        do {
            return .success(try request.credentials(certificatePEM: String(decoding: r.certificate, as: UTF8.self),
                                                    rootPEM: String(decoding: r.rootCa, as: UTF8.self)))
        } catch {
            return .failure(RPCError(code: .internalError, message: "\(error)"))
        }
    }

    /// Copies a node's certificate files aside (they are replaced when it renews) and
    /// loads them.
    static func copyCertificates(of stateDir: String, to dir: String) throws -> NodeCredentials {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for f in [NodeCredentials.keyFile, NodeCredentials.certificateFile, NodeCredentials.rootsFile] {
            try? FileManager.default.removeItem(atPath: dir + "/" + f)
            try FileManager.default.copyItem(atPath: stateDir + "/certificates/" + f, toPath: dir + "/" + f)
        }
        guard let loaded = try NodeCredentials.load(directory: dir) else { throw CAError("no certificate in \(dir)") }
        return loaded
    }
}
