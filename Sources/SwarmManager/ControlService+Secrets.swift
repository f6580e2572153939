import Foundation
import GRPCCore
import SwarmAPI
import SwarmRPC
import SwarmStore
import SwiftProtobuf

/// Secrets and configs: created with their data, which for a secret no call returns
/// again; referenced by services (checked when the service is written); removable only
/// while no service references them.
extension ControlService {
    /// SwarmKit's limits: 500 KiB for a secret, 1000 KiB for a config.
    public static let maximumSecretSize = 500 * 1024
    public static let maximumConfigSize = 1000 * 1024

    public func createSecret(request: SwarmCreateSecretRequest, context: ServerContext) async throws -> SwarmCreateSecretResponse {
        try Self.checkPayload(request.annotations.name, request.data, kind: "secret", maximum: Self.maximumSecretSize)
        var secret = SwarmSecret()
        secret.id = Identifiers.make()
        secret.annotations = request.annotations
        secret.data = request.data
        secret.size = UInt64(request.data.count)
        try await write { try $0.create(secret) }
        return .with { $0.secret = Self.redacted(secret) }
    }

    public func getSecret(request: SwarmGetSecretRequest, context: ServerContext) async throws -> SwarmGetSecretResponse {
        try .with { $0.secret = Self.redacted(try lookup(SwarmSecret.self, request.secretID)) }
    }

    public func listSecrets(request: SwarmListSecretsRequest, context: ServerContext) async throws -> SwarmListSecretsResponse {
        .with { $0.secrets = store.view().find(SwarmSecret.self).map(Self.redacted).sorted { $0.annotations.name < $1.annotations.name } }
    }

    public func removeSecret(request: SwarmRemoveSecretRequest, context: ServerContext) async throws -> SwarmRemoveSecretResponse {
        let secret = try lookup(SwarmSecret.self, request.secretID)
        try await write { tx in
            let users = tx.find(SwarmService.self).filter { s in
                (s.spec.task.secrets + s.previousSpec.task.secrets).contains { $0.secretID == secret.id }
            }
            if !users.isEmpty {
                throw ControlError.failedPrecondition("secret \(secret.annotations.name) is in use by service \(users.map(\.spec.annotations.name).sorted().joined(separator: ", "))")
            }
            try tx.delete(SwarmSecret.self, id: secret.id)
        }
        return SwarmRemoveSecretResponse()
    }

    public func createConfig(request: SwarmCreateConfigRequest, context: ServerContext) async throws -> SwarmCreateConfigResponse {
        try Self.checkPayload(request.annotations.name, request.data, kind: "config", maximum: Self.maximumConfigSize)
        var config = SwarmConfig()
        config.id = Identifiers.make()
        config.annotations = request.annotations
        config.data = request.data
        config.size = UInt64(request.data.count)
        try await write { try $0.create(config) }
        return .with { $0.config = config }
    }

    public func getConfig(request: SwarmGetConfigRequest, context: ServerContext) async throws -> SwarmGetConfigResponse {
        try .with { $0.config = try lookup(SwarmConfig.self, request.configID) }
    }

    public func listConfigs(request: SwarmListConfigsRequest, context: ServerContext) async throws -> SwarmListConfigsResponse {
        .with { $0.configs = store.view().find(SwarmConfig.self).sorted { $0.annotations.name < $1.annotations.name } }
    }

    public func removeConfig(request: SwarmRemoveConfigRequest, context: ServerContext) async throws -> SwarmRemoveConfigResponse {
        let config = try lookup(SwarmConfig.self, request.configID)
        try await write { tx in
            let users = tx.find(SwarmService.self).filter { s in
                (s.spec.task.configs + s.previousSpec.task.configs).contains { $0.configID == config.id }
            }
            if !users.isEmpty {
                throw ControlError.failedPrecondition("config \(config.annotations.name) is in use by service \(users.map(\.spec.annotations.name).sorted().joined(separator: ", "))")
            }
            try tx.delete(SwarmConfig.self, id: config.id)
        }
        return SwarmRemoveConfigResponse()
    }

    /// A secret as the API returns it: everything but its data.
    static func redacted(_ secret: SwarmSecret) -> SwarmSecret {
        var s = secret
        s.data = Data()
        return s
    }

    /// A valid name (SwarmKit's rule: letters and digits, with `-`, `_` and `.` inside,
    /// at most 64 characters), and data of 1 byte to `maximum`.
    static func checkPayload(_ name: String, _ data: Data, kind: String, maximum: Int) throws(ControlError) {
        try checkName(name, kind: kind)
        if data.isEmpty { throw .invalidArgument("\(kind) \(name) has no data") }
        if data.count > maximum {
            throw .invalidArgument("\(kind) \(name) is \(data.count) bytes; at most \(maximum) (\(maximum / 1024) KiB) are accepted")
        }
    }

    static func checkName(_ name: String, kind: String) throws(ControlError) {
        let chars = Array(name.utf8)
        func alnum(_ c: UInt8) -> Bool { (48...57).contains(c) || (65...90).contains(c) || (97...122).contains(c) }
        let inner = chars.allSatisfy { alnum($0) || $0 == 45 || $0 == 95 || $0 == 46 }
        guard (1...64).contains(chars.count), inner, alnum(chars.first!), alnum(chars.last!) else {
            throw .invalidArgument("invalid \(kind) name \"\(name)\": 1 to 64 letters, digits, '-', '_' or '.', starting and ending with a letter or digit")
        }
    }

    /// Resolves a task template's secret and config references (by name or ID) to the
    /// objects in `view`, filling in IDs, names and default targets; a missing one is
    /// NotFound, a bad target or a duplicate InvalidArgument.
    static func resolveReferences(_ task: inout SwarmTaskSpec, in view: ReadTx) throws(ControlError) {
        var targets: Set<String> = []
        for i in task.secrets.indices {
            let ref = task.secrets[i]
            let key = ref.secretName.isEmpty ? ref.secretID : ref.secretName
            guard let secret = find(SwarmSecret.self, key, view) else { throw .notFound("secret \(key) not found") }
            task.secrets[i].secretID = secret.id
            task.secrets[i].secretName = secret.annotations.name
            if ref.target.isEmpty { task.secrets[i].target = secret.annotations.name }
            try checkTarget(task.secrets[i].target, kind: "secret", seen: &targets)
        }
        targets = []
        for i in task.configs.indices {
            let ref = task.configs[i]
            let key = ref.configName.isEmpty ? ref.configID : ref.configName
            guard let config = find(SwarmConfig.self, key, view) else { throw .notFound("config \(key) not found") }
            task.configs[i].configID = config.id
            task.configs[i].configName = config.annotations.name
            if ref.target.isEmpty { task.configs[i].target = config.annotations.name }
            try checkTarget(task.configs[i].target, kind: "config", seen: &targets)
        }
    }

    /// Whether every secret and config a task template references still exists (checked
    /// again in the transaction that writes the service).
    static func checkReferencesExist(_ task: SwarmTaskSpec, in tx: WriteTx) throws(ControlError) {
        for ref in task.secrets where tx.get(SwarmSecret.self, id: ref.secretID) == nil {
            throw .notFound("secret \(ref.secretName) not found")
        }
        for ref in task.configs where tx.get(SwarmConfig.self, id: ref.configID) == nil {
            throw .notFound("config \(ref.configName) not found")
        }
    }

    static func find<T: StoreObject>(_ type: T.Type, _ key: String, _ view: ReadTx) -> T? {
        if key.isEmpty { return nil }
        return view.find(type, .name(key)).first ?? view.get(type, id: key)
    }

    /// A file name: not empty, no `/`, not `.` or `..`, at most 255 bytes, once per task.
    static func checkTarget(_ target: String, kind: String, seen: inout Set<String>) throws(ControlError) {
        if target.isEmpty || target.contains("/") || target == "." || target == ".." || target.utf8.count > 255 || target.contains("\0") {
            throw .invalidArgument("invalid \(kind) target \"\(target)\": a file name (no '/'), at most 255 bytes")
        }
        if !seen.insert(target).inserted { throw .invalidArgument("two \(kind)s have the target \(target)") }
    }
}
