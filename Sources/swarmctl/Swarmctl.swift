import ArgumentParser
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SwarmAPI
import SwarmCA
import SwarmClient
import SwarmRPC
import SwiftProtobuf

/// swarmctl: drives a swift-swarm cluster through a manager's control socket.
@main
struct Swarmctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swarmctl", abstract: "Control a swift-swarm cluster",
        subcommands: [ServiceCommand.self, NodeCommand.self, TaskCommand.self, ClusterCommand.self, PluginCommand.self,
                      SecretCommand.self, ConfigCommand.self])
}

/// Where the manager is, and how to print.
struct Connection: ParsableArguments {
    @Option(name: [.short, .customLong("socket")], help: "Control socket (or host:port); defaults to $SWARM_SOCKET")
    var socket: String?

    @Option(help: "Output format: table or json")
    var format = "table"

    @Option(help: "Over TCP: the directory of a manager's certificate and key (a manager's <state-dir>/certificates); defaults to $SWARM_CERT_DIR")
    var certDir: String?

    var address: String {
        let s = socket ?? ProcessInfo.processInfo.environment["SWARM_SOCKET"] ?? "./swarmd-state/swarmd.sock"
        return s.contains("/") || s.hasSuffix(".sock") ? "unix:\(s)" : s
    }

    var isJSON: Bool { format == "json" }

    func validate() throws {
        guard ["table", "json"].contains(format) else { throw ValidationError("--format must be table or json") }
    }

    func call<R: Sendable>(_ body: (SwarmControl.Client<HTTP2ClientTransport.Posix>) async throws -> R) async throws -> R {
        let address = self.address
        var security = ClientSecurity.plaintext
        if !address.hasPrefix("unix:") {
            // A manager's remote API admits only callers with a manager certificate.
            guard let dir = certDir ?? ProcessInfo.processInfo.environment["SWARM_CERT_DIR"] else {
                throw Failure("talking to a manager over TCP needs a manager certificate: give --cert-dir (or SWARM_CERT_DIR), for example a manager's <state-dir>/certificates")
            }
            do {
                guard let credentials = try NodeCredentials.load(directory: dir) else {
                    throw Failure("\(dir) holds no node certificate (\(NodeCredentials.certificateFile))")
                }
                security = .mutualTLS(credentials)
            } catch let e as CAError where e == .locked {
                throw Failure("the key in \(dir) is sealed with the cluster's unlock key (autolock): use the manager's control socket instead")
            } catch let e as CAError {
                throw Failure(e.description)
            }
        }
        do {
            return try await withControlClient(address, security: security, body)
        } catch let e as RPCError {
            throw Failure(e.message)
        }
    }
}

/// A command's failure, printed as "Error: ..." with exit status 1.
struct Failure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// Prints rows in aligned columns, as SwarmKit's swarmctl does.
func table(_ header: [String], _ rows: [[String]]) {
    let widths = header.indices.map { i in ([header[i]] + rows.map { $0[i] }).map(\.count).max()! }
    for r in [header] + rows {
        print(r.enumerated().map { i, c in c.padding(toLength: widths[i] + 2, withPad: " ", startingAt: 0) }.joined()
            .trimmingCharacters(in: .whitespaces))
    }
}

/// Prints messages as a JSON array, with the .proto field names.
func json(_ messages: [some SwiftProtobuf.Message]) throws {
    var opts = JSONEncodingOptions()
    opts.preserveProtoFieldNames = true
    print("[" + (try messages.map { try $0.jsonString(options: opts) }).joined(separator: ",\n") + "]")
}

/// "RUNNING", "DRAIN": enum cases as SwarmKit prints them.
func upper(_ value: Any) -> String {
    var out = ""
    for c in "\(value)" {
        if c.isUppercase, !out.isEmpty { out += "_" }
        out += c.uppercased()
    }
    return out
}

/// "key: value" lines with the keys aligned.
func fields(_ pairs: [(String, String)]) {
    let width = pairs.map(\.0.count).max() ?? 0
    for (k, v) in pairs { print(k.padding(toLength: width, withPad: " ", startingAt: 0) + " : " + v) }
}

/// Wraps a quantity parser so that its error becomes a command-line validation error.
func quantity<T>(_ parser: (String) throws(Quantities.ParseError) -> T, _ text: String) throws -> T {
    do { return try parser(text) } catch { throw ValidationError(error.description) }
}
