import ArgumentParser
import Foundation
import SwarmAPI
import SwarmRPC
import SwiftProtobuf

/// `service create|update --secret NAME[:TARGET] --config NAME[:TARGET]`. On update, a flag
/// given replaces all of the service's secrets (or configs).
struct DataFlags: ParsableArguments {
    @Option(parsing: .singleValue, help: "A secret the tasks get as a file: NAME[:TARGET] (the file name; default NAME), in $SWARM_SECRETS_DIR (repeatable)")
    var secret: [String] = []
    @Flag(help: "Remove every secret (service update)") var clearSecrets = false
    @Option(parsing: .singleValue, help: "A config the tasks get as a file: NAME[:TARGET], in $SWARM_CONFIGS_DIR (repeatable)")
    var config: [String] = []
    @Flag(help: "Remove every config (service update)") var clearConfigs = false

    func apply(to spec: inout SwarmServiceSpec) throws {
        if clearSecrets { spec.task.secrets = [] }
        if !secret.isEmpty {
            spec.task.secrets = try secret.map { text in
                let (name, target) = try Self.reference(text, flag: "--secret")
                return .with { $0.secretName = name; $0.target = target }
            }
        }
        if clearConfigs { spec.task.configs = [] }
        if !config.isEmpty {
            spec.task.configs = try config.map { text in
                let (name, target) = try Self.reference(text, flag: "--config")
                return .with { $0.configName = name; $0.target = target }
            }
        }
    }

    static func reference(_ text: String, flag: String) throws -> (String, String) {
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard let name = parts.first, !name.isEmpty, parts.count == 1 || !parts[1].isEmpty else {
            throw ValidationError("\(flag) \(text): give NAME or NAME:TARGET")
        }
        return (name, parts.count == 2 ? parts[1] : "")
    }
}

/// Reads a secret's or config's data: from a file, or from standard input for `-`.
func readData(file: String?, dash: String?) throws -> Data {
    switch (file, dash) {
    case (let f?, nil):
        guard let data = FileManager.default.contents(atPath: f) else { throw Failure("cannot read \(f)") }
        return data
    case (nil, "-"?):
        return FileHandle.standardInput.readDataToEndOfFile()
    default:
        throw ValidationError("give the data with -f FILE, or - to read it from standard input")
    }
}

struct SecretCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "secret", abstract: "Manage secrets (their data is never shown)",
                                                    subcommands: [Create.self, List.self, Inspect.self, Remove.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a secret from a file (-f FILE) or standard input (-)")
        @OptionGroup var conn: Connection
        @Argument var name: String
        @Argument(help: "- to read the data from standard input") var dash: String?
        @Option(name: .short, help: "File holding the data") var file: String?
        func run() async throws {
            let data = try readData(file: file, dash: dash)
            let (n, d) = (name, data)
            print(try await conn.call { try await $0.createSecret(.with { $0.annotations.name = n; $0.data = d }) }.secret.id)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List secrets")
        @OptionGroup var conn: Connection
        func run() async throws {
            let secrets = try await conn.call { try await $0.listSecrets(.init()) }.secrets
            if conn.isJSON { return try json(secrets) }
            table(["ID", "Name", "Size"], secrets.map { [$0.id, $0.annotations.name, "\($0.size) B"] })
        }
    }

    struct Inspect: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a secret (not its data)")
        @OptionGroup var conn: Connection
        @Argument(help: "Secret ID or name (or a unique prefix)") var secret: String
        func run() async throws {
            let s = try await conn.call { try await $0.getSecret(.with { $0.secretID = secret }) }.secret
            if conn.isJSON { return try json([s]) }
            fields([("ID", s.id), ("Name", s.annotations.name), ("Size", "\(s.size) B")])
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove a secret no service uses")
        @OptionGroup var conn: Connection
        @Argument var secret: String
        func run() async throws {
            _ = try await conn.call { try await $0.removeSecret(.with { $0.secretID = secret }) }
            print(secret)
        }
    }
}

struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "config", abstract: "Manage configs",
                                                    subcommands: [Create.self, List.self, Inspect.self, Remove.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a config from a file (-f FILE) or standard input (-)")
        @OptionGroup var conn: Connection
        @Argument var name: String
        @Argument(help: "- to read the data from standard input") var dash: String?
        @Option(name: .short, help: "File holding the data") var file: String?
        func run() async throws {
            let data = try readData(file: file, dash: dash)
            let (n, d) = (name, data)
            print(try await conn.call { try await $0.createConfig(.with { $0.annotations.name = n; $0.data = d }) }.config.id)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List configs")
        @OptionGroup var conn: Connection
        func run() async throws {
            let configs = try await conn.call { try await $0.listConfigs(.init()) }.configs
            if conn.isJSON { return try json(configs) }
            table(["ID", "Name", "Size"], configs.map { [$0.id, $0.annotations.name, "\($0.size) B"] })
        }
    }

    struct Inspect: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a config and its data")
        @OptionGroup var conn: Connection
        @Argument(help: "Config ID or name (or a unique prefix)") var config: String
        func run() async throws {
            let c = try await conn.call { try await $0.getConfig(.with { $0.configID = config }) }.config
            if conn.isJSON { return try json([c]) }
            fields([("ID", c.id), ("Name", c.annotations.name), ("Size", "\(c.size) B")])
            print("Data:")
            print(String(decoding: c.data, as: UTF8.self))
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove a config no service uses")
        @OptionGroup var conn: Connection
        @Argument var config: String
        func run() async throws {
            _ = try await conn.call { try await $0.removeConfig(.with { $0.configID = config }) }
            print(config)
        }
    }
}
