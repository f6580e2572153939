import Foundation
import SwarmAPI
import Testing

extension SecuritySuites {
    /// A container reads its secret and config from `/run/secrets` and `/run/configs`, bound
    /// read-only from the task's private tmpfs, on the dockerd that `scripts/test.sh` starts.
    @Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["SWARM_TEST_DOCKER_HOST"] != nil,
                                 "needs the dockerd that scripts/test.sh starts"))
    struct DockerSecretTests {
        @Test func containersReadTheirSecretsAsFiles() async throws {
            let c = try SwarmdCluster()
            try c.startManager(environment: ["DOCKER_HOST": DockerTests.host])
            _ = try await c.readyCluster()
            try await c.waitFor("the docker executor offered", seconds: 30) {
                (try? c.ctl("plugin", "ls").output.contains("docker")) == true
            }
            let run = String(Int.random(in: 100_000...999_999))
            let value = "v-\(UUID().uuidString)"
            let file = "\(c.root)/secret"
            try Data(value.utf8).write(to: URL(fileURLWithPath: file))
            #expect(try c.ctl("secret", "create", "pw\(run)", "-f", file).status == 0)
            #expect(try c.ctl("config", "create", "cfg\(run)", "-f", file).status == 0)
            let name = "reader\(run)"
            let created = try c.ctl("service", "create", "--name", name, "--image", DockerTests.image, "--args=sh", "--args=-c",
                                    "--args", "cat $SWARM_SECRETS_DIR/password; echo; cat /run/configs/cfg\(run); echo; "
                                        + "echo x > /run/secrets/password 2>/dev/null || echo read-only; sleep 600",
                                    "--secret", "pw\(run):password", "--config", "cfg\(run)")
            #expect(created.status == 0, "\(created.output)")
            try await c.waitFor("the container's output", seconds: 60) {
                let out = (try? c.ctl("service", "logs", name).output) ?? ""
                return out.contains("read-only")
            }
            let out = try c.ctl("service", "logs", name).output
            #expect(out.components(separatedBy: value).count == 3, "\(out)")
            let container = try #require(try DockerTests.containers(service: name).first)
            let mounts = try DockerTests.docker("inspect", "--format", "{{range .Mounts}}{{.Destination}}:{{.RW}} {{end}}", container).output
            #expect(mounts.contains("/run/secrets:false") && mounts.contains("/run/configs:false"), "\(mounts)")
            #expect(try c.ctl("service", "rm", name).status == 0)
            try await c.waitFor("the container gone", seconds: 60) { (try? DockerTests.containers(service: name).isEmpty) == true }
        }
    }
}
