import ArgumentParser
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SwarmAPI
import SwarmClient
import SwarmRPC
import SwiftProtobuf

/// swarmctl: drives a swift-swarm cluster through a manager's control socket.
@main
struct Swarmctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swarmctl", abstract: "Control a swift-swarm cluster",
        subcommands: [ServiceCommand.self, NodeCommand.self, TaskCommand.self, ClusterCommand.self, PluginCommand.self])
}

/// Where the manager is, and how to print.
struct Connection: ParsableArguments {
    @Option(name: [.short, .customLong("socket")], help: "Control socket (or host:port); defaults to $SWARM_SOCKET")
    var socket: String?

    @Option(help: "Output format: table or json")
    var format = "table"

    var address: String {
        let s = socket ?? ProcessInfo.processInfo.environment["SWARM_SOCKET"] ?? "./swarmd-state/swarmd.sock"
        return s.contains("/") || s.hasSuffix(".sock") ? "unix:\(s)" : s
    }

    var isJSON: Bool { format == "json" }

    func validate() throws {
        guard ["table", "json"].contains(format) else { throw ValidationError("--format must be table or json") }
    }

    func call<R: Sendable>(_ body: (SwarmControl.Client<HTTP2ClientTransport.Posix>) async throws -> R) async throws -> R {
        do {
            return try await withControlClient(address, body)
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
