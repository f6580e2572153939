import Foundation
import SwarmGPU

/// A node of an openb node list.
public struct TraceNode: Sendable, Equatable {
    public var name: String
    public var cpuMilli: Int64
    public var memoryMiB: Int64
    public var gpus: Int
    public var model: String
}

/// A pod of an openb pod list, with its GPU request normalised as the protocol says.
public struct TracePod: Sendable, Equatable {
    public var name: String
    public var cpuMilli: Int64
    public var memoryMiB: Int64
    public var gpuCount: Int
    /// Per-GPU milli (capped at 1000); 0 when the pod has no GPU.
    public var gpuMilli: Int32
    /// The `gpu_spec` column as written (empty: any model).
    public var spec: String

    /// Allowed models: the spec's non-empty tokens, without duplicates, in order.
    public var models: [String] {
        var seen: [String] = []
        for t in spec.split(separator: "|") where !t.isEmpty && t != "nan" && !seen.contains(String(t)) { seen.append(String(t)) }
        return seen
    }

    public var shape: GPUTaskShape {
        GPUTaskShape(cpu: cpuMilli, memory: memoryMiB, gpuCount: gpuCount, gpuMilli: gpuMilli, models: models)
    }

    /// GPU demand in milli: count × per-GPU milli.
    public var demand: Int64 { Int64(gpuCount) * Int64(gpuMilli) }

    /// "cpu", "share", or "<k>-gpu": the pod's type in failure counts.
    public var kind: String {
        if gpuCount == 0 { return "cpu" }
        if gpuCount == 1 && gpuMilli < 1000 { return "share" }
        return "\(gpuCount)-gpu"
    }
}

/// A trace file that cannot be read: which file, which line, and what is wrong.
public struct TraceError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var reason: String
    public var description: String { "\(file):\(line): \(reason)" }
}

/// Readers of the openb CSV files (`openb_node_list_gpu_node.csv`,
/// `openb_pod_list_*.csv`). Columns are found by their header names, so column order and
/// extra columns do not matter; a missing column or a garbled value stops the read with
/// the line that has it.
public enum Trace {
    public static func nodes(path: String) throws(TraceError) -> [TraceNode] {
        let rows = try table(path, required: ["sn", "cpu_milli", "memory_mib", "gpu", "model"])
        var out: [TraceNode] = []
        for (line, r) in rows {
            let node = TraceNode(name: r["sn"]!, cpuMilli: try int(r, "cpu_milli", path, line),
                                 memoryMiB: try int(r, "memory_mib", path, line), gpus: Int(try int(r, "gpu", path, line)),
                                 model: r["model"]!)
            guard !node.name.isEmpty else { throw TraceError(file: path, line: line, reason: "empty node name") }
            guard node.cpuMilli >= 0, node.memoryMiB >= 0, (0...64).contains(node.gpus) else {
                throw TraceError(file: path, line: line, reason: "negative capacity or a GPU count outside 0...64")
            }
            guard node.gpus == 0 || !node.model.isEmpty else { throw TraceError(file: path, line: line, reason: "a node with GPUs has no model") }
            out.append(node)
        }
        guard !out.isEmpty else { throw TraceError(file: path, line: 1, reason: "no nodes") }
        return out
    }

    /// The columns every pod list has.
    static let podColumns = ["name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli"]

    public static func pods(path: String) throws(TraceError) -> [TracePod] {
        try pods(rows: table(path, required: podColumns), path: path)
    }

    /// Pods from rows already read by ``table(_:required:)``.
    static func pods(rows: [(Int, [String: String])], path: String) throws(TraceError) -> [TracePod] {
        var out: [TracePod] = []
        for (line, r) in rows {
            let count = try int(r, "num_gpu", path, line)
            guard (0...64).contains(count) else { throw TraceError(file: path, line: line, reason: "num_gpu \(count) is outside 0...64") }
            var milli = try int(r, "gpu_milli", path, line)
            milli = min(milli, 1000)
            let hasGPU = count >= 1 && milli > 0
            let pod = TracePod(name: r["name"]!, cpuMilli: try int(r, "cpu_milli", path, line), memoryMiB: try int(r, "memory_mib", path, line),
                               gpuCount: hasGPU ? Int(count) : 0, gpuMilli: hasGPU ? Int32(milli) : 0,
                               spec: hasGPU ? (r["gpu_spec"] ?? "") : "")
            guard pod.cpuMilli >= 0, pod.memoryMiB >= 0 else { throw TraceError(file: path, line: line, reason: "negative request") }
            out.append(pod)
        }
        guard !out.isEmpty else { throw TraceError(file: path, line: 1, reason: "no pods") }
        return out
    }

    static func int(_ row: [String: String], _ column: String, _ path: String, _ line: Int) throws(TraceError) -> Int64 {
        let text = row[column] ?? ""
        if let v = Int64(text) { return v }
        // Some exports write integers as floats ("1000.0").
        if let d = Double(text), d.isFinite, d == d.rounded(), abs(d) < 1e15 { return Int64(d) }
        throw TraceError(file: path, line: line, reason: "column \(column): \"\(text)\" is not an integer")
    }

    /// The rows of a CSV file with a header line, as (line number, column → value).
    static func table(_ path: String, required: [String]) throws(TraceError) -> [(Int, [String: String])] {
        try headerAndRows(path, required: required).rows
    }

    /// The header's column names and the rows of a CSV file, as (line number, column → value).
    static func headerAndRows(_ path: String, required: [String]) throws(TraceError) -> (header: [String], rows: [(Int, [String: String])]) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TraceError(file: path, line: 0, reason: "cannot read the file")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw TraceError(file: path, line: 0, reason: "not UTF-8 text") }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { $0.hasSuffix("\r") ? $0.dropLast() : $0 }
        while lines.last?.isEmpty == true { lines.removeLast() }
        guard let headerLine = lines.first else { throw TraceError(file: path, line: 1, reason: "empty file") }
        let header = headerLine.split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmingCharacters(in: .whitespaces) }
        for column in required where !header.contains(column) {
            throw TraceError(file: path, line: 1, reason: "missing column \"\(column)\" (header: \(header.joined(separator: ",")))")
        }
        var rows: [(Int, [String: String])] = []
        rows.reserveCapacity(lines.count)
        for (i, line) in lines.enumerated().dropFirst() {
            if line.isEmpty { throw TraceError(file: path, line: i + 1, reason: "empty line") }
            let fields = line.split(separator: ",", omittingEmptySubsequences: false)
            guard fields.count == header.count else {
                throw TraceError(file: path, line: i + 1, reason: "\(fields.count) fields, the header has \(header.count)")
            }
            var row: [String: String] = [:]
            for (k, f) in zip(header, fields) { row[k] = String(f) }
            rows.append((i + 1, row))
        }
        return (header, rows)
    }
}
