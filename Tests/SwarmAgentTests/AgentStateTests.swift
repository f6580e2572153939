import Foundation
import GRDB
import SwarmAPI
@testable import SwarmAgent
import SwarmManager
import SwiftProtobuf
import Testing

/// The agent's SQLite task database, its log reader, and the manager's log broker.
struct TaskDBTests {
    /// Runs `body` with the path of a database file in a new directory, removed afterwards.
    static func withDBPath(_ body: (String) throws -> Void) throws {
        let dir = NSTemporaryDirectory() + "agent-db-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try body(dir + "/tasks.db")
    }

    static func task(_ id: String) -> SwarmTask {
        .with { $0.id = id; $0.serviceID = "svc"; $0.desiredState = .running; $0.spec.process.command = "/bin/true" }
    }

    @Test func recordsSurviveReopeningWithTheirReportState() throws {
        try Self.withDBPath { path in
            do {
                let db = try TaskDB(path: path)
                try db.put(Self.task("a"))
                try db.put(Self.task("b"))
                try db.setStatus("a", .with { $0.state = .running; $0.pid = 42 }, reported: false)
                try db.markReported(["a": .with { $0.state = .running; $0.pid = 42 }])
                try db.setStatus("b", .with { $0.state = .failed; $0.exitCode = 3 }, reported: false)
                // An acknowledgement of an older status does not hide a newer one.
                try db.markReported(["b": .with { $0.state = .running }])
            }
            let reopened = try TaskDB(path: path).all()
            #expect(Set(reopened.keys) == ["a", "b"])
            #expect(reopened["a"]?.task == Self.task("a"))
            #expect(reopened["a"]?.status?.pid == 42 && reopened["a"]?.reported == true)
            #expect(reopened["b"]?.status?.state == .failed && reopened["b"]?.reported == false)
        }
    }

    @Test func putKeepsTheStatusAndDeleteForgets() throws {
        try Self.withDBPath { path in
            let db = try TaskDB(path: path)
            try db.put(Self.task("a"))
            try db.setStatus("a", .with { $0.state = .running }, reported: true)
            var updated = Self.task("a")
            updated.desiredState = .shutdown
            try db.put(updated)
            #expect(try db.all()["a"]?.task.desiredState == .shutdown)
            #expect(try db.all()["a"]?.status?.state == .running)
            try db.delete("a")
            #expect(try db.all().isEmpty)
        }
    }

    @Test func aFileThatIsNotADatabaseIsRefusedAndLeftAlone() throws {
        try Self.withDBPath { path in
            let garbage = Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 31) })
            try garbage.write(to: URL(fileURLWithPath: path))
            #expect {
                _ = try TaskDB(path: path)
            } throws: { error in
                "\(error)".contains(path)
            }
            #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == garbage)
        }
    }

    @Test func aRecordThatDoesNotDecodeIsRefused() throws {
        try Self.withDBPath { path in
            do {
                let db = try TaskDB(path: path)
                try db.put(Self.task("a"))
                try db.queue.write { try $0.execute(sql: "UPDATE task SET spec = x'ffffffff' WHERE id = 'a'") }
            }
            #expect {
                _ = try TaskDB(path: path)
            } throws: { error in
                "\(error)".contains("record a is corrupt")
            }
        }
    }
}

struct LogReaderTests {
    @Test func readsTailsFollowsAndCrossesRotation() throws {
        let dir = NSTemporaryDirectory() + "logreader-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "old-1\nold-2\n".write(toFile: dir + "/stdout.log.1", atomically: true, encoding: .utf8)
        try "new-1\nnew-2\npart".write(toFile: dir + "/stdout.log", atomically: true, encoding: .utf8)
        try "e-1\n".write(toFile: dir + "/stderr.log", atomically: true, encoding: .utf8)
        func text(_ lines: [SwarmLogLine]) -> [String] { lines.map { String(decoding: $0.data, as: UTF8.self) } }

        var all = LogReader(taskID: "t", nodeID: "n", workDir: dir)
        #expect(text(all.initial(tail: 0)) == ["old-1\n", "old-2\n", "new-1\n", "new-2\n", "e-1\n"])
        var tail = LogReader(taskID: "t", nodeID: "n", workDir: dir)
        let last = tail.initial(tail: 1)
        #expect(text(last) == ["new-2\n", "e-1\n"])
        #expect(last.first?.stream == .stdout && last.last?.stream == .stderr && last.allSatisfy { $0.taskID == "t" && $0.nodeID == "n" })

        // The incomplete line is completed by a later write.
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: dir + "/stdout.log"))
        h.seekToEndOfFile()
        h.write(Data("ial\nnext\n".utf8))
        try h.close()
        #expect(text(all.poll()) == ["partial\n", "next\n"])
        #expect(all.poll().isEmpty)

        // Rotation: the rest of the old file is read from ".1", then the new file.
        let h2 = try FileHandle(forWritingTo: URL(fileURLWithPath: dir + "/stdout.log"))
        h2.seekToEndOfFile()
        h2.write(Data("before-rotation\n".utf8))
        try h2.close()
        rename(dir + "/stdout.log.1", dir + "/stdout.log.2")
        rename(dir + "/stdout.log", dir + "/stdout.log.1")
        try "after-rotation\n".write(toFile: dir + "/stdout.log", atomically: false, encoding: .utf8)
        #expect(text(all.poll()) == ["before-rotation\n", "after-rotation\n"])
    }
}

struct LogBrokerTests {
    static func task(_ id: String, on node: String) -> SwarmTask { .with { $0.id = id; $0.nodeID = node } }

    static func line(_ task: String, _ node: String, _ text: String) -> SwarmLogLine {
        .with { $0.taskID = task; $0.nodeID = node; $0.data = Data(text.utf8) }
    }

    static func collect(_ stream: AsyncStream<LogBroker.Event>) async -> (lines: [String], warnings: [String]) {
        var lines: [String] = []
        var warnings: [String] = []
        for await e in stream {
            switch e {
            case .lines(let l): lines += l.map { String(decoding: $0.data, as: UTF8.self) }
            case .warning(let w): warnings.append(w)
            }
        }
        return (lines, warnings)
    }

    @Test func routesSubscriptionsToNodesAndEndsWhenAllHaveSent() async throws {
        let broker = LogBroker()
        let (_, n1) = broker.register(node: "n1") { _ in [] }
        let (_, n2) = broker.register(node: "n2") { _ in [] }
        let events = broker.subscribe(id: "s", tasks: [Self.task("a", on: "n1"), Self.task("b", on: "n2"), Self.task("c", on: "n1")],
                                      follow: false, tail: 5)
        var i1 = n1.makeAsyncIterator()
        var i2 = n2.makeAsyncIterator()
        let s1 = await i1.next()
        let s2 = await i2.next()
        #expect(s1?.taskIds == ["a", "c"] && s1?.tail == 5 && s1?.follow == false)
        #expect(s2?.taskIds == ["b"])
        // A node cannot publish another node's lines.
        broker.publish(node: "n1", .with { $0.subscriptionID = "s"; $0.lines = [Self.line("a", "n1", "from a"), Self.line("b", "n2", "forged")] })
        broker.publish(node: "n1", .with { $0.subscriptionID = "s"; $0.close = true })
        #expect(broker.subscriptionCount == 1)
        broker.publish(node: "n2", .with { $0.subscriptionID = "s"; $0.lines = [Self.line("b", "n2", "from b")]; $0.close = true })
        let got = await Self.collect(events)
        #expect(got.lines == ["from a", "from b"])
        #expect(got.warnings.isEmpty)
        #expect(broker.subscriptionCount == 0)
    }

    @Test func disconnectedNodesAreWarningsAndFollowersResumeOnReconnect() async throws {
        let broker = LogBroker()
        let events = broker.subscribe(id: "f", tasks: [Self.task("a", on: "n1")], follow: true, tail: 0)
        // n1 connects later: the following subscription is sent to it then.
        let (token, n1) = broker.register(node: "n1") { _ in ["a"] }
        var it = n1.makeAsyncIterator()
        #expect(await it.next()?.id == "f")
        broker.publish(node: "n1", .with { $0.subscriptionID = "f"; $0.lines = [Self.line("a", "n1", "hello")] })
        broker.unregister(node: "n1", token: token)
        // The subscriber leaves: the node is told to stop.
        let (_, again) = broker.register(node: "n1") { _ in ["a"] }
        var it2 = again.makeAsyncIterator()
        #expect(await it2.next()?.id == "f")
        broker.unsubscribe("f")
        let close = await it2.next()
        #expect(close?.id == "f" && close?.close == true)
        let got = await Self.collect(events)
        #expect(got.lines == ["hello"])
        #expect(got.warnings.contains { $0.contains("not connected") } && got.warnings.contains { $0.contains("disconnected") })
        #expect(broker.subscriptionCount == 0)
    }

    /// A one-shot subscription sent to a node's stream just before the node reopened it
    /// (killed and restarted) is sent again on the new stream, and still ends.
    @Test func aOneShotSubscriptionSurvivesTheNodesNewStream() async throws {
        let broker = LogBroker()
        let (_, dead) = broker.register(node: "n1") { _ in ["a"] }
        let events = broker.subscribe(id: "once", tasks: [Self.task("a", on: "n1")], follow: false, tail: 0)
        var old = dead.makeAsyncIterator()
        #expect(await old.next()?.id == "once", "sent to the stream that is about to die")
        let (_, fresh) = broker.register(node: "n1") { _ in ["a"] }
        var it = fresh.makeAsyncIterator()
        let again = await it.next()
        #expect(again?.id == "once" && again?.taskIds == ["a"] && again?.follow == false)
        broker.publish(node: "n1", .with { $0.subscriptionID = "once"; $0.lines = [Self.line("a", "n1", "hi")]; $0.close = true })
        let got = await Self.collect(events)
        #expect(got.lines == ["hi"])
        #expect(broker.subscriptionCount == 0)
    }
}

struct QuantityTests {
    @Test func durationsSizesAndCPUs() throws {
        #expect(try Quantities.duration("1s") == 1_000_000_000)
        #expect(try Quantities.duration("1m30s") == 90_000_000_000)
        #expect(try Quantities.duration("250ms") == 250_000_000)
        #expect(try Quantities.duration("1.5h") == 5_400_000_000_000)
        #expect(try Quantities.duration("0") == 0)
        for bad in ["", "5", "s", "1x", "1s2", "-1s", "1.2.3s"] {
            #expect(throws: Quantities.ParseError.self, "\(bad)") { try Quantities.duration(bad) }
        }
        #expect(try Quantities.bytes("512MiB") == 512 << 20)
        #expect(try Quantities.bytes("1g") == 1 << 30)
        #expect(try Quantities.bytes("1048576") == 1 << 20)
        #expect(try Quantities.bytes("1.5k") == 1536)
        for bad in ["", "MiB", "12 MB", "1y", "-1"] {
            #expect(throws: Quantities.ParseError.self, "\(bad)") { try Quantities.bytes(bad) }
        }
        #expect(try Quantities.nanoCPUs("0.5") == 500_000_000)
        #expect(try Quantities.nanoCPUs("2") == 2_000_000_000)
        for bad in ["", "-1", "two", "nan", "inf"] {
            #expect(throws: Quantities.ParseError.self, "\(bad)") { try Quantities.nanoCPUs(bad) }
        }
        #expect(Quantities.format(nanoseconds: 5_000_000_000) == "5s")
        #expect(Quantities.format(nanoseconds: 250_000_000) == "250ms")
    }
}
