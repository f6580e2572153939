import CFFI
import Foundation
import SwarmPluginABI

/// A declarative plugin: one exported C function and a manifest, `NAME.plugin.json`, next
/// to its library. The manifest says what the function is (a `filter` returning an int,
/// non-zero to accept, or a `score` returning a double, higher is better) and which values
/// it takes, in order, from a fixed vocabulary. The host builds the libffi call interface
/// once, at load time, and calls the function with those values: the plugin has no
/// registration code and includes no header.
///
///     {
///       "name": "roomy",
///       "kind": "score",
///       "library": "libroomy.so",
///       "function": "roomy_score",
///       "args": ["node.cpu_free", "task.cpu", "node.label:zone"]
///     }
///
/// An argument may also be written `{"field": "node.cpu_free", "type": "double"}`; the type
/// must then match the field's. Values: `double` for CPUs, `int64` for counts, bytes and
/// milli-GPUs, `string` (a NUL-terminated `const char *`, empty when absent) for names and
/// labels.
public enum DeclarativePlugin {
    /// The values a declarative plugin can ask for.
    public enum Field: Equatable, Sendable {
        case nodeID, nodeHostname, nodeCPUFree, nodeCPUTotal, nodeMemoryFree, nodeMemoryTotal
        case nodeGPUCount, nodeGPUFreeMilli, nodeTasks, nodeTasksOfService
        case nodeLabel(String), nodeEngineLabel(String)
        case taskServiceName, taskCPU, taskMemory, taskGPUCount, taskGPUMilli

        /// The C type the function receives the value as.
        public var type: String {
            switch self {
            case .nodeCPUFree, .nodeCPUTotal, .taskCPU: return "double"
            case .nodeID, .nodeHostname, .nodeLabel, .nodeEngineLabel, .taskServiceName: return "string"
            default: return "int64"
            }
        }

        static let plain: [String: Field] = [
            "node.id": .nodeID, "node.hostname": .nodeHostname, "node.cpu_free": .nodeCPUFree, "node.cpu_total": .nodeCPUTotal,
            "node.memory_free": .nodeMemoryFree, "node.memory_total": .nodeMemoryTotal, "node.gpu_count": .nodeGPUCount,
            "node.gpu_free_milli": .nodeGPUFreeMilli, "node.tasks": .nodeTasks, "node.tasks_of_service": .nodeTasksOfService,
            "task.service_name": .taskServiceName, "task.cpu": .taskCPU, "task.memory": .taskMemory,
            "task.gpu_count": .taskGPUCount, "task.gpu_milli": .taskGPUMilli,
        ]

        /// Parses a vocabulary word, e.g. `node.cpu_free` or `node.label:zone`.
        public init?(_ text: String) {
            if let f = Field.plain[text] { self = f; return }
            for (prefix, make) in [("node.label:", Field.nodeLabel), ("node.engine_label:", Field.nodeEngineLabel)] as [(String, (String) -> Field)] {
                if text.hasPrefix(prefix), text.count > prefix.count { self = make(String(text.dropFirst(prefix.count))); return }
            }
            return nil
        }

        static var vocabulary: String { (plain.keys.sorted() + ["node.label:KEY", "node.engine_label:KEY"]).joined(separator: ", ") }
    }

    /// A parsed manifest.
    public struct Manifest: Sendable {
        public var name: String
        public var kind: PluginKind
        public var library: String
        public var function: String
        public var args: [Field]
    }

    /// Reads a manifest; errors name the manifest's line.
    public static func manifest(at path: String) throws(PluginLoadError) -> Manifest {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw PluginLoadError(file: path, reason: "cannot read the manifest")
        }
        func fail(_ token: String?, _ reason: String) -> PluginLoadError {
            PluginLoadError(file: "\(path):\(line(of: token, in: text))", reason: reason)
        }
        let object: [String: Any]
        do {
            guard let o = try JSONSerialization.jsonObject(with: data) as? [String: Any] else { throw fail(nil, "the manifest is not a JSON object") }
            object = o
        } catch let e as PluginLoadError {
            throw e
        } catch {
            throw fail(nil, "the manifest is not valid JSON: \((error as NSError).userInfo[NSDebugDescriptionErrorKey] ?? error)")
        }
        func string(_ key: String) throws(PluginLoadError) -> String {
            guard let v = object[key] as? String, !v.isEmpty else { throw fail("\"\(key)\"", "\"\(key)\" must be a non-empty string") }
            return v
        }
        let name = try string("name")
        let kindText = try string("kind")
        let kind: PluginKind
        switch kindText {
        case "filter": kind = .filter
        case "score": kind = .strategy
        default: throw fail("\"kind\"", "kind \"\(kindText)\" is not filter or score")
        }
        let library = try string("library")
        let function = try string("function")
        guard let rawArgs = object["args"] as? [Any] else { throw fail("\"args\"", "\"args\" must be a list of fields") }
        var args: [Field] = []
        for raw in rawArgs {
            let word: String
            var declared: String?
            if let s = raw as? String {
                word = s
            } else if let o = raw as? [String: Any], let f = o["field"] as? String {
                word = f
                declared = o["type"] as? String
            } else {
                throw fail("\"args\"", "each argument is a field name or {\"field\": ..., \"type\": ...}")
            }
            guard let field = Field(word) else {
                throw fail("\"\(word)\"", "unknown field \"\(word)\" (known: \(Field.vocabulary))")
            }
            if let declared, declared != field.type {
                throw fail("\"\(word)\"", "field \(word) is passed as \(field.type), but the manifest declares \(declared)")
            }
            args.append(field)
        }
        guard args.count <= 16 else { throw fail("\"args\"", "at most 16 arguments") }
        return Manifest(name: name, kind: kind, library: library, function: function, args: args)
    }

    /// The 1-based line where `token` first appears (1 when it does not).
    static func line(of token: String?, in text: String) -> Int {
        guard let token, let r = text.range(of: token) else { return 1 }
        return text[..<r.lowerBound].reduce(1) { $0 + ($1 == "\n" ? 1 : 0) }
    }
}

/// A declarative plugin's function with its libffi call interface, built once.
final class FFIFunction: @unchecked Sendable {
    let args: [DeclarativePlugin.Field]
    let pointer: UnsafeMutableRawPointer
    let returnsDouble: Bool
    private let cif: UnsafeMutablePointer<ffi_cif>
    private let types: UnsafeMutablePointer<UnsafeMutablePointer<ffi_type>?>

    init?(args: [DeclarativePlugin.Field], pointer: UnsafeMutableRawPointer, returnsDouble: Bool) {
        self.args = args
        self.pointer = pointer
        self.returnsDouble = returnsDouble
        cif = .allocate(capacity: 1)
        types = .allocate(capacity: max(1, args.count))
        for (i, a) in args.enumerated() {
            switch a.type {
            case "double": types[i] = swarm_ffi_double()
            case "string": types[i] = swarm_ffi_pointer()
            default: types[i] = swarm_ffi_sint64()
            }
        }
        let ret = returnsDouble ? swarm_ffi_double() : swarm_ffi_sint32()
        guard ffi_prep_cif(cif, FFI_DEFAULT_ABI, UInt32(args.count), ret, types) == FFI_OK else { return nil }
    }

    /// Calls the function with the values of its fields for this task and node.
    func call(_ task: UnsafePointer<swarm_task_view>, _ node: UnsafePointer<swarm_node_view>) -> Double {
        let n = node.pointee
        let t = task.pointee
        var numbers = [Int64](repeating: 0, count: max(1, args.count))
        var doubles = [Double](repeating: 0, count: max(1, args.count))
        var strings: [UnsafeMutablePointer<CChar>?] = Array(repeating: nil, count: max(1, args.count))
        defer { for s in strings { free(s) } }
        func label(_ list: UnsafePointer<swarm_label>?, _ count: Int, _ key: String) -> String {
            for i in 0..<count where list![i].key.text == key { return list![i].value.text }
            return ""
        }
        for (i, a) in args.enumerated() {
            switch a {
            case .nodeID: strings[i] = strdup(n.id.text)
            case .nodeHostname: strings[i] = strdup(n.hostname.text)
            case .nodeLabel(let k): strings[i] = strdup(label(n.labels, n.labels_count, k))
            case .nodeEngineLabel(let k): strings[i] = strdup(label(n.engine_labels, n.engine_labels_count, k))
            case .taskServiceName: strings[i] = strdup(t.service_name.text)
            case .nodeCPUFree: doubles[i] = Double(n.nano_cpus_free) / 1e9
            case .nodeCPUTotal: doubles[i] = Double(n.nano_cpus_total) / 1e9
            case .taskCPU: doubles[i] = Double(t.reserved_nano_cpus) / 1e9
            case .nodeMemoryFree: numbers[i] = n.memory_bytes_free
            case .nodeMemoryTotal: numbers[i] = n.memory_bytes_total
            case .nodeGPUCount: numbers[i] = Int64(n.gpus_count)
            case .nodeGPUFreeMilli: numbers[i] = (0..<n.gpus_count).reduce(0) { $0 + Int64(n.gpus[$1].free_milli) }
            case .nodeTasks: numbers[i] = Int64(n.tasks_total)
            case .nodeTasksOfService: numbers[i] = Int64(n.tasks_of_service)
            case .taskMemory: numbers[i] = t.reserved_memory_bytes
            case .taskGPUCount: numbers[i] = Int64(t.gpu_count)
            case .taskGPUMilli: numbers[i] = Int64(t.gpu_milli)
            }
        }
        return numbers.withUnsafeMutableBufferPointer { nb in
            doubles.withUnsafeMutableBufferPointer { db in
                strings.withUnsafeMutableBufferPointer { sb in
                    var values = [UnsafeMutableRawPointer?](repeating: nil, count: max(1, args.count))
                    for (i, a) in args.enumerated() {
                        switch a.type {
                        case "double": values[i] = UnsafeMutableRawPointer(db.baseAddress! + i)
                        case "string": values[i] = UnsafeMutableRawPointer(sb.baseAddress! + i)
                        default: values[i] = UnsafeMutableRawPointer(nb.baseAddress! + i)
                        }
                    }
                    let fn = unsafeBitCast(pointer, to: (@convention(c) () -> Void).self)
                    return values.withUnsafeMutableBufferPointer { vb in
                        if returnsDouble {
                            var result = 0.0
                            ffi_call(cif, fn, &result, vb.baseAddress)
                            return result
                        }
                        // libffi widens integer results to a full register (ffi_arg).
                        var result: ffi_arg = 0
                        ffi_call(cif, fn, &result, vb.baseAddress)
                        return Int32(truncatingIfNeeded: result) != 0 ? 1 : 0
                    }
                }
            }
        }
    }

    /// C entry points with this object as their context.
    static let score: @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<swarm_task_view>?, UnsafePointer<swarm_node_view>?) -> Double = { ctx, t, n in
        Unmanaged<FFIFunction>.fromOpaque(ctx!).takeUnretainedValue().call(t!, n!)
    }
    static let check: @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<swarm_task_view>?, UnsafePointer<swarm_node_view>?) -> Int32 = { ctx, t, n in
        Unmanaged<FFIFunction>.fromOpaque(ctx!).takeUnretainedValue().call(t!, n!) != 0 ? 1 : 0
    }
}

extension swarm_str {
    var text: String {
        guard let data, len > 0 else { return "" }
        return data.withMemoryRebound(to: UInt8.self, capacity: len) { String(decoding: UnsafeBufferPointer(start: $0, count: len), as: UTF8.self) }
    }
}

extension PluginRegistry {
    /// Loads a declarative plugin from its manifest: opens the library the manifest names
    /// (relative to the manifest), finds the function, prepares the call interface and
    /// registers the filter or strategy. Nothing is registered when any step fails.
    public func load(manifest path: String) throws(PluginLoadError) {
        let m = try DeclarativePlugin.manifest(at: path)
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        func fail(_ token: String, _ reason: String) -> PluginLoadError {
            PluginLoadError(file: "\(path):\(DeclarativePlugin.line(of: token, in: text))", reason: reason)
        }
        let dir = (path as NSString).deletingLastPathComponent
        let library = m.library.hasPrefix("/") ? m.library : dir + "/" + m.library
        guard let handle = dlopen(library, RTLD_NOW | RTLD_LOCAL) else {
            throw fail("\"library\"", "cannot load \(library): \(dlerror().map { String(cString: $0) } ?? "unknown error")")
        }
        guard let symbol = dlsym(handle, m.function) else {
            throw fail("\"function\"", "missing symbol \(m.function) in \(library)")
        }
        guard let fn = FFIFunction(args: m.args, pointer: symbol, returnsDouble: m.kind == .strategy) else {
            throw fail("\"args\"", "libffi cannot prepare a call with these arguments")
        }
        let ctx = Unmanaged.passRetained(fn).toOpaque()  // plugins are never unloaded
        let record = PluginRecord(name: m.name, kind: m.kind, plugin: m.name, version: "declarative",
                                  abiMajor: UInt32(SWARM_PLUGIN_ABI_MAJOR), abiMinor: UInt32(SWARM_PLUGIN_ABI_MINOR), file: path)
        switch m.kind {
        case .strategy:
            var v = swarm_strategy_v1()
            v.struct_size = MemoryLayout<swarm_strategy_v1>.size
            v.ctx = ctx
            v.score = FFIFunction.score
            try install(record, .strategy(v))
        default:
            var v = swarm_filter_v1()
            v.struct_size = MemoryLayout<swarm_filter_v1>.size
            v.ctx = ctx
            v.check = FFIFunction.check
            try install(record, .filter(v))
        }
    }
}
