import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SwarmCA
import SwarmManager
import SwarmRaftNode

/// A bare replicated-store manager: one Raft member serving the manager-to-manager API.
/// Used by the multi-process tests and the Raft benchmarks until `swarmd` embeds it.
///
///     swarm-raftd --state-dir DIR --listen 127.0.0.1:4242 [--join ADDR] [--force-new-cluster]
///                 [--tick-ms 100] [--election-tick 10] [--heartbeat-tick 1]
///                 [--snapshot-interval 10000] [--keep-entries 500] [--tls-dir DIR]
///
/// With `--tls-dir` (a directory of node credentials, as swarmd keeps in
/// `<state-dir>/certificates`, with a manager certificate), the member serves and calls
/// its peers over mutual TLS, and authorizes calls as swarmd's remote API does.
var options: [String: String] = [:]
var flags: Set<String> = []
var args = CommandLine.arguments.dropFirst().makeIterator()
while let a = args.next() {
    guard a.hasPrefix("--") else { FileHandle.standardError.write(Data("unexpected argument \(a)\n".utf8)); exit(2) }
    if a == "--force-new-cluster" { flags.insert(a) } else if let v = args.next() { options[a] = v }
}
guard let stateDir = options["--state-dir"], let listen = options["--listen"] else {
    FileHandle.standardError.write(Data("usage: swarm-raftd --state-dir DIR --listen HOST:PORT [--join ADDR]\n".utf8))
    exit(2)
}
LoggingSystem.bootstrap { label in
    var h = StreamLogHandler.standardError(label: label)
    h.logLevel = ProcessInfo.processInfo.environment["SWARM_LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0) } ?? .info
    return h
}
var config = RaftNodeConfig(stateDir: stateDir, advertiseAddr: options["--advertise"] ?? listen)
if let t = options["--tick-ms"].flatMap(Int.init) { config.tickInterval = .milliseconds(t) }
if let e = options["--election-tick"].flatMap(Int.init) { config.electionTick = e }
if let h = options["--heartbeat-tick"].flatMap(Int.init) { config.heartbeatTick = h }
if let s = options["--snapshot-interval"].flatMap(UInt64.init) { config.snapshotInterval = s }
if let k = options["--keep-entries"].flatMap(UInt64.init) { config.logEntriesForSlowFollowers = k }

var credentials: NodeCredentials?
if let dir = options["--tls-dir"] {
    do { credentials = try NodeCredentials.load(directory: dir) } catch {
        FileHandle.standardError.write(Data("swarm-raftd: \(error)\n".utf8))
        exit(2)
    }
    guard let c = credentials else {
        FileHandle.standardError.write(Data("swarm-raftd: \(dir) holds no node certificate\n".utf8))
        exit(2)
    }
    config.security = .mutualTLS(c)
    config.nodeID = c.identity.nodeID
}

// The log and snapshots are sealed with a data key, as swarmd's are.
do { config.dataKey = try DataKeyFile.loadOrCreate(stateDir + "/data.key") } catch {
    FileHandle.standardError.write(Data("swarm-raftd: \(error)\n".utf8))
    exit(2)
}

signal(SIGTERM, SIG_IGN)
let sigterm = DispatchSource.makeSignalSource(signal: SIGTERM)

do {
    var joined: SwarmJoinResponse?
    let hasState = FileManager.default.fileExists(atPath: stateDir + "/raft-id")
    if let joinAddr = options["--join"], !hasState {
        joined = try await RaftNode.joinCluster(via: joinAddr, advertise: config.advertiseAddr, nodeID: config.nodeID,
                                                security: config.security)
    }
    let node = try RaftNode(config: config, joined: joined, forceNewCluster: flags.contains("--force-new-cluster"))
    guard let (host, port) = NetworkAddress.split(listen) else { throw RaftNodeError.refused("bad --listen \(listen)") }
    let server: GRPCServer<HTTP2ServerTransport.Posix>
    if let credentials {
        let clusterID = credentials.identity.clusterID
        server = GRPCServer(transport: .http2NIOPosix(address: .ipv4(host: host, port: port), transportSecurity: credentials.serverSecurity()),
                            services: [RaftService(node: node)],
                            interceptors: [AuthorizationInterceptor(store: node.store, clusterID: { clusterID })])
    } else {
        server = GRPCServer(transport: .http2NIOPosix(address: .ipv4(host: host, port: port), transportSecurity: .plaintext),
                            services: [RaftService(node: node)])
    }
    sigterm.setEventHandler {
        node.stop()
        server.beginGracefulShutdown()
    }
    sigterm.resume()
    try await withThrowingDiscardingTaskGroup { group in
        group.addTask { try await server.serve() }
        if let addr = try await server.listeningAddress {
            FileHandle.standardOutput.write(Data("swarm-raftd \(String(node.id, radix: 16)) listening on \(addr)\n".utf8))
        }
        node.start()
    }
} catch {
    FileHandle.standardError.write(Data("swarm-raftd: \(error)\n".utf8))
    exit(1)
}


import SwarmAPI
