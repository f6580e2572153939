import ArgumentParser
import Foundation
import SwarmAPI
import SwarmStore

/// In-memory store figures: write and read rates, the cost of a snapshot read while
/// writes run, and the memory that 100k tasks take.
struct StoreBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "store", abstract: "Benchmark the in-memory store")

    @Option(help: "Tasks to load")
    var tasks = 100_000

    @Option(help: "Random reads to time")
    var reads = 1_000_000

    @Option(help: "Single-object update transactions to time")
    var updates = 20_000

    static func makeTask(_ k: Int) -> SwarmTask {
        var t = SwarmTask()
        t.id = String(format: "task%019d", k)
        t.serviceID = "service\(k % 1000)"
        t.nodeID = "node\(k % 500)"
        t.slot = UInt64(k / 1000)
        t.desiredState = .running
        t.status.state = .running
        t.status.message = "started"
        t.spec.process.command = "/bin/sleep"
        t.spec.process.args = ["3600"]
        t.spec.runtimeName = "process"
        t.spec.resources.reservations.nanoCpus = 100_000_000
        t.spec.resources.reservations.memoryBytes = 64 << 20
        return t
    }

    func run() async throws {
        let store = MemoryStore()
        var rows: [[String]] = []

        let rssBefore = residentBytes()
        let clock = ContinuousClock()
        let loadTime = try await clock.measure {
            try await store.batch { batch in
                for k in 0..<tasks { try await batch.update { try $0.create(Self.makeTask(k)) } }
            }
        }
        let rssAfter = residentBytes()
        let direct = MemoryStore()
        let directTime = try await clock.measure {
            for start in stride(from: 0, to: tasks, by: 200) {
                try await direct.update { tx in
                    for k in start..<min(start + 200, tasks) { try tx.create(Self.makeTask(k)) }
                }
            }
        }
        rows.append(["creates in transactions of 200", rate(tasks, seconds(directTime)), ""])
        rows.append(["batched creates (200/tx)", rate(tasks, seconds(loadTime)), ""])
        rows.append(["memory for \(tasks) tasks", String(format: "%.1f MiB", Double(rssAfter - rssBefore) / 1_048_576),
                     String(format: "%.0f B/task", Double(rssAfter - rssBefore) / Double(tasks))])

        // What a scheduler pass writes: every task moves to a node, 200 per transaction.
        var assignTimes: [Double] = []
        for round in 0..<3 {
            let current = store.view().all(SwarmTask.self)
            let time = try await clock.measure {
                try await store.batch { batch in
                    for var t in current {
                        t.nodeID = "node\((t.slot + UInt64(round)) % 500)"
                        t.status.state = .assigned
                        try await batch.update { try $0.update(t) }
                    }
                }
            }
            assignTimes.append(seconds(time))
        }
        rows.append(["batched updates (200/tx), best of 3", rate(tasks, assignTimes.min()!), ""])

        var rng = SystemRandomNumberGenerator()
        let ids = (0..<1024).map { _ in String(format: "task%019d", Int.random(in: 0..<tasks, using: &rng)) }
        var found = 0
        let readTime = clock.measure {
            let view = store.view()
            for k in 0..<reads where view.get(SwarmTask.self, id: ids[k & 1023]) != nil { found += 1 }
        }
        precondition(found == reads)
        rows.append(["reads by ID (one view)", rate(reads, seconds(readTime)), ""])

        var viewReads = Samples()
        let viewTime = clock.measure {
            for k in 0..<(reads / 10) {
                let t0 = clock.now
                _ = store.view().get(SwarmTask.self, id: ids[k & 1023])
                if k % 10 == 0 { viewReads.add(clock.now - t0) }
            }
        }
        rows.append(["view() + read by ID", rate(reads / 10, seconds(viewTime)), "p99 \(ms(viewReads.percentile(99)))"])

        let indexTime = clock.measure {
            for k in 0..<1000 { _ = store.view().find(SwarmTask.self, .service("service\(k)")) }
        }
        rows.append(["tasks of a service (100 each)", rate(1000, seconds(indexTime)), ""])

        let updateTime = try await clock.measure {
            for k in 0..<updates {
                var t = store.view().get(SwarmTask.self, id: String(format: "task%019d", k % tasks))!
                t.status.message = "tick \(k)"
                try await store.update { try $0.update(t) }
            }
        }
        rows.append(["single-object update transactions", rate(updates, seconds(updateTime)), ""])

        // Snapshot reads while a writer runs flat out.
        let writer = Task {
            var k = 0
            while !Task.isCancelled {
                var t = store.view().get(SwarmTask.self, id: String(format: "task%019d", k % tasks))!
                t.status.message = "busy \(k)"
                try? await store.update { try $0.update(t) }
                k += 1
            }
            return k
        }
        var underLoad = Samples()
        var scans = Samples()
        for k in 0..<20_000 {
            let t0 = clock.now
            let v = store.view()
            _ = v.get(SwarmTask.self, id: ids[k & 1023])
            underLoad.add(clock.now - t0)
            if k % 2000 == 0 {
                let s0 = clock.now
                _ = v.find(SwarmTask.self, .node("node7")).count
                scans.add(clock.now - s0)
            }
            if k % 64 == 0 { await Task.yield() }
        }
        writer.cancel()
        let written = await writer.value
        rows.append(["view() + read while writing", "p50 \(ms(underLoad.percentile(50)))",
                     "p99 \(ms(underLoad.percentile(99))) (\(written) writes meanwhile)"])
        rows.append(["tasks of a node (200) while writing", "p50 \(ms(scans.percentile(50)))", "p99 \(ms(scans.percentile(99)))"])

        let snapTime = try clock.measure { _ = try store.serializedSnapshot() }
        rows.append(["serialize whole store", ms(seconds(snapTime)), ""])

        print("store benchmark: \(tasks) tasks")
        printTable(["operation", "rate / latency", "notes"], rows)
    }
}
