import Foundation
import GRPCCore
import SwarmAPI
import SwarmRPC
import SwiftProtobuf
import Testing

extension SecuritySuites {
    /// Secrets and configs through real swarmd and swarmctl processes.
    @Suite(.serialized) struct SecretTests {
        /// A task reads its secret and config as files; a node with no task that references
        /// them never receives them; the files go when the task ends.
        @Test func tasksGetTheirSecretsAsFilesAndOtherNodesNever() async throws {
            let c = try SwarmdCluster()
            try c.startManager()
            let token = try await c.readyCluster().joinTokens.worker
            try c.startWorker("w1", token: token)
            try c.startWorker("w2", token: token)
            try await c.waitFor("three READY nodes", seconds: 40) { await c.nodes().filter { $0.status.state == .ready }.count == 3 }
            let value = "s3cr3t-\(UUID().uuidString)"
            let secretFile = "\(c.root)/secret.txt"
            try Data(value.utf8).write(to: URL(fileURLWithPath: secretFile))
            #expect(try c.ctl("secret", "create", "db-pass", "-f", secretFile).status == 0)
            let configFile = "\(c.root)/config.txt"
            try Data("mode=fast\n".utf8).write(to: URL(fileURLWithPath: configFile))
            #expect(try c.ctl("config", "create", "app.conf", "-f", configFile).status == 0)
            // The API never returns a secret's data; a config's it does.
            let secrets = try await c.control { try await $0.listSecrets(.init()) }.secrets
            #expect(secrets.count == 1 && secrets[0].data.isEmpty && secrets[0].size == UInt64(value.utf8.count))
            let got = try await c.control { try await $0.getSecret(.with { $0.secretID = "db-pass" }) }.secret
            #expect(got.data.isEmpty && got.annotations.name == "db-pass")
            let config = try await c.control { try await $0.getConfig(.with { $0.configID = "app.conf" }) }.config
            #expect(String(decoding: config.data, as: UTF8.self) == "mode=fast\n")

            let script = "echo \"$SWARM_SECRETS_DIR\"; stat -f -c %T \"$SWARM_SECRETS_DIR\"; stat -c %a \"$SWARM_SECRETS_DIR/password\"; "
                + "cat \"$SWARM_SECRETS_DIR/password\"; echo; cat \"$SWARM_CONFIGS_DIR/app.conf\"; exec sleep 1000"
            let serviceName = "reader-\(Int.random(in: 100_000...999_999))"
            let created = try c.ctl("service", "create", "--name", serviceName, "--command", "/bin/sh", "--args=-c", "--args", script,
                                    "--constraint", "node.hostname==w1", "--secret", "db-pass:password", "--config", "app.conf")
            #expect(created.status == 0, "\(created.output)")
            var taskDir = ""
            try await c.waitFor("the task's output", seconds: 30) {
                guard let t = await c.tasks().first(where: { $0.status.state == .running }) else { return false }
                taskDir = "\(c.root)/w1/agent/tasks/\(t.id)"
                let out = (try? String(contentsOfFile: taskDir + "/stdout.log", encoding: .utf8)) ?? ""
                return out.contains("mode=fast")
            }
            let out = try String(contentsOfFile: taskDir + "/stdout.log", encoding: .utf8)
            let lines = out.split(separator: "\n").map(String.init)
            // The files are on a tmpfs (mounted for the task, or under /dev/shm), mode 0400.
            #expect(lines.count >= 4 && Array(lines[1...3]) == ["tmpfs", "400", value], "\(out)")
            let secretsDir = lines.first ?? ""
            #expect(secretsDir == taskDir + "/secrets" || secretsDir.hasPrefix("/dev/shm/"), "\(secretsDir)")
            // w2 runs nothing that needs it: neither its files nor its task database hold it.
            // Neither does w1's database: the agent keeps secrets in memory only.
            func holds(_ dir: String) -> Bool {
                let files = FileManager.default.enumerator(atPath: dir)?.compactMap { $0 as? String } ?? []
                return files.contains { f in
                    let path = dir + "/" + f
                    guard !path.hasPrefix(taskDir), let data = FileManager.default.contents(atPath: path) else { return false }
                    return data.range(of: Data(value.utf8)) != nil
                }
            }
            #expect(!holds("\(c.root)/w2"))
            #expect(!holds("\(c.root)/w1/agent/tasks.db") && !holds("\(c.root)/w1"))
            // At rest, the managers' Raft log and snapshots and every agent's task records are
            // sealed: neither the secret nor the service's name is in any file in the clear.
            #expect(!holds("\(c.root)/manager"))
            for node in ["manager", "w1", "w2"] {
                let files = FileManager.default.enumerator(atPath: "\(c.root)/\(node)")?.compactMap { $0 as? String } ?? []
                let named = files.filter { f in
                    let path = "\(c.root)/\(node)/\(f)"
                    guard !path.hasPrefix(taskDir), let data = FileManager.default.contents(atPath: path) else { return false }
                    return data.range(of: Data(serviceName.utf8)) != nil
                }
                #expect(named.isEmpty, "\(node): \(named)")
            }
            // ... while the managers' own files are there and being written (the check can fail).
            let wal = FileManager.default.enumerator(atPath: "\(c.root)/manager/raft")?.compactMap { $0 as? String }.filter { $0.hasSuffix(".wal") } ?? []
            #expect(!wal.isEmpty)
            // In use: it cannot be removed.
            let inUse = try c.ctl("secret", "rm", "db-pass")
            #expect(inUse.status != 0 && inUse.output.contains("in use by service \(serviceName)"), "\(inUse.output)")
            // The task ends: its files go with it.
            #expect(try c.ctl("service", "rm", serviceName).status == 0)
            try await c.waitFor("the secret files to go", seconds: 30) {
                !FileManager.default.fileExists(atPath: secretsDir + "/password")
            }
            #expect(try c.ctl("secret", "rm", "db-pass").status == 0)
            #expect(try c.ctl("config", "rm", "app.conf").status == 0)
        }

        /// Bad secrets and references are refused with the reason, and nothing is stored.
        @Test func badSecretsAreRefused() async throws {
            let c = try SwarmdCluster()
            try c.startManager()
            _ = try await c.readyCluster()
            func refused(_ data: Data, name: String) async -> RPCError? {
                do { _ = try await c.control { try await $0.createSecret(.with { $0.annotations.name = name; $0.data = data }) } } catch let e as RPCError {
                    return e
                } catch { return nil }
                return nil
            }
            let big = await refused(Data(count: 500 * 1024 + 1), name: "big")
            #expect(big?.code == .invalidArgument && big?.message.contains("at most 512000") == true, "\(String(describing: big))")
            let badName = await refused(Data("x".utf8), name: "../etc/passwd")
            #expect(badName?.code == .invalidArgument && badName?.message.contains("invalid secret name") == true)
            let empty = await refused(Data(), name: "empty")
            #expect(empty?.code == .invalidArgument)
            // Exactly 500 KiB is accepted.
            #expect(await refused(Data(count: 500 * 1024), name: "max") == nil)
            let missing = try c.ctl("service", "create", "--name", "x", "--command", "/bin/true", "--secret", "nope")
            #expect(missing.status != 0 && missing.output.contains("secret nope not found"), "\(missing.output)")
            let twice = try c.ctl("service", "create", "--name", "x", "--command", "/bin/true", "--secret", "max:a", "--secret", "max:a")
            #expect(twice.status != 0 && twice.output.contains("target a"), "\(twice.output)")
            let badTarget = try c.ctl("service", "create", "--name", "x", "--command", "/bin/true", "--secret", "max:../a")
            #expect(badTarget.status != 0 && badTarget.output.contains("invalid secret target"), "\(badTarget.output)")
            // Only the one good secret, and no service, were stored.
            #expect(try await c.control { try await $0.listSecrets(.init()) }.secrets.map(\.annotations.name) == ["max"])
            #expect(try await c.control { try await $0.listServices(.init()) }.services.isEmpty)
        }
    }
}
