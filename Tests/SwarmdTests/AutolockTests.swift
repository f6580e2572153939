import Foundation
import SwarmAPI
import SwarmCA
import Testing

extension SecuritySuites {
    /// Autolock with real swarmd processes: sealed keys, a manager that restarts locked, the
    /// unlock over its control socket or at start, rotation, and nothing in the clear.
    @Suite(.serialized) struct AutolockTests {
        @Test func aRestartedManagerStaysLockedUntilGivenItsKey() async throws {
            let c = try SwarmdCluster()
            try c.startManager()
            _ = try await c.readyCluster()
            let name = "svc-\(Int.random(in: 100_000_000...999_999_999))"
            let value = "value-\(UUID().uuidString)"
            #expect(try c.ctl("service", "create", "--name", name, "--command", "/bin/sleep", "--args", "1000").status == 0)
            let secretFile = "\(c.root)/secret"
            try Data(value.utf8).write(to: URL(fileURLWithPath: secretFile))
            #expect(try c.ctl("secret", "create", "token", "-f", secretFile).status == 0)
            let certificates = "\(c.root)/manager/certificates"
            #expect(!NodeCredentials.isLocked(directory: certificates))

            let on = try c.ctl("cluster", "update", "--autolock", "true")
            let key = try #require(on.output.split(separator: " ").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) })
            #expect(on.status == 0 && key.hasPrefix("SWMKEY-1-"), "\(on.output)")
            // The key is not in the cluster's inspect output, only behind unlock-key.
            #expect(try !c.ctl("cluster", "inspect", "default").output.contains(key))
            #expect(try c.ctl("cluster", "unlock-key").output.contains(key))
            try await c.waitFor("the keys to be sealed", seconds: 20) {
                NodeCredentials.isLocked(directory: certificates)
                    && (try? String(contentsOfFile: certificates + "/swarm-data.key", encoding: .utf8))?.hasPrefix("-----BEGIN SWARM SEALED FILE-----") == true
            }

            // Restarted without the key: locked, and it says so.
            #expect(c.terminate("manager") == 0)
            try c.startManager()
            try await c.waitFor("the locked manager's socket", seconds: 20) {
                (try? c.ctl("node", "ls"))?.output.contains("locked") == true
            }
            let wrong = try c.ctl("node", "unlock", UnlockKey().description)
            #expect(wrong.status != 0 && wrong.output.contains("the unlock key is wrong"), "\(wrong.output)")
            let garbled = try c.ctl("node", "unlock", "SWMKEY-1-nonsense")
            #expect(garbled.status != 0 && garbled.output.contains("unlock key"), "\(garbled.output)")
            #expect(try c.ctl("node", "unlock", key).status == 0)
            try await c.waitFor("the manager to serve again", seconds: 30) {
                (try? c.ctl("service", "ls"))?.output.contains(name) == true
            }

            // Rotation: the files are sealed with the new key; the old one no longer opens them.
            let sealedBefore = try String(contentsOfFile: certificates + "/" + NodeCredentials.keyFile, encoding: .utf8)
            let rotated = try c.ctl("cluster", "update", "--rotate-unlock-key")
            let newKey = try #require(rotated.output.split(separator: " ").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) })
            #expect(rotated.status == 0 && newKey.hasPrefix("SWMKEY-1-") && newKey != key, "\(rotated.output)")
            try await c.waitFor("the keys to be resealed", seconds: 20) {
                (try? String(contentsOfFile: certificates + "/" + NodeCredentials.keyFile, encoding: .utf8)) != sealedBefore
            }
            #expect(c.terminate("manager") == 0)
            try c.startManager(["--unlock-key", key])
            try await c.waitFor("the manager to refuse the old key", seconds: 20) { !c.isRunning("manager") }
            #expect(c.logTail("manager").contains("the unlock key is wrong"), "\(c.logTail("manager"))")
            try c.startManager(["--unlock-key", newKey])
            try await c.waitFor("the manager to start with the new key", seconds: 30) {
                (try? c.ctl("service", "ls"))?.output.contains(name) == true
            }

            // Nothing of the store is in the clear in the state directory: not the service's
            // name, not the secret's value (and the files are there: the search can fail).
            let dir = "\(c.root)/manager"
            let files = FileManager.default.enumerator(atPath: dir)?.compactMap { $0 as? String } ?? []
            #expect(files.contains { $0.hasSuffix(".wal") })
            let leaks = files.filter { f in
                guard let data = FileManager.default.contents(atPath: dir + "/" + f) else { return false }
                return data.range(of: Data(name.utf8)) != nil || data.range(of: Data(value.utf8)) != nil
            }
            #expect(leaks.isEmpty, "\(leaks)")

            // Off again: the keys are written in the clear.
            #expect(try c.ctl("cluster", "update", "--autolock", "false").status == 0)
            try await c.waitFor("the keys in the clear", seconds: 20) { !NodeCredentials.isLocked(directory: certificates) }
        }
    }
}
