/// Parsing of the quantities users type: durations ("1s", "1m30s", "250ms"), byte sizes
/// ("512MiB", "1G", "1048576") and CPU counts ("0.5", "2").
public enum Quantities {
    /// A parse failure, naming what was typed and what was expected.
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
        init(_ d: String) { description = d }
    }

    /// Nanoseconds in a Go-style duration: a sequence of number+unit (ns, us, ms, s, m, h).
    /// A bare "0" is zero.
    public static func duration(_ text: String) throws(ParseError) -> Int64 {
        let units: [(String, Double)] = [("ns", 1), ("us", 1e3), ("µs", 1e3), ("ms", 1e6), ("s", 1e9), ("m", 60e9), ("h", 3600e9)]
        let bad = ParseError("invalid duration \"\(text)\": use a number and a unit, e.g. 500ms, 10s, 1m30s")
        if text == "0" { return 0 }
        var rest = Substring(text)
        guard !rest.isEmpty else { throw bad }
        var total = 0.0
        while !rest.isEmpty {
            let number = rest.prefix { $0.isNumber || $0 == "." }
            guard !number.isEmpty, let value = Double(number) else { throw bad }
            rest = rest.dropFirst(number.count)
            let unitText = rest.prefix { !($0.isNumber || $0 == ".") }
            guard let unit = units.filter({ $0.0 == unitText }).first else { throw bad }
            rest = rest.dropFirst(unitText.count)
            total += value * unit.1
        }
        guard total < 9.2e18 else { throw bad }
        return Int64(total)
    }

    /// Bytes in a size: a number with an optional unit (b, k/kb/kib, m/mb/mib, g/gb/gib,
    /// t/tb/tib; case-insensitive, powers of 1024 as Docker does).
    public static func bytes(_ text: String) throws(ParseError) -> Int64 {
        let bad = ParseError("invalid size \"\(text)\": use a number with an optional unit, e.g. 512MiB, 1G, 1048576")
        let lower = text.lowercased()
        let number = lower.prefix { $0.isNumber || $0 == "." }
        guard !number.isEmpty, let value = Double(number), value >= 0 else { throw bad }
        let scale: Double
        switch lower.dropFirst(number.count) {
        case "", "b": scale = 1
        case "k", "kb", "kib": scale = 1024
        case "m", "mb", "mib": scale = 1024 * 1024
        case "g", "gb", "gib": scale = 1024 * 1024 * 1024
        case "t", "tb", "tib": scale = 1024 * 1024 * 1024 * 1024
        default: throw bad
        }
        guard value * scale < 9.2e18 else { throw bad }
        return Int64(value * scale)
    }

    /// Nano-CPUs in a CPU count such as "0.5" or "2".
    public static func nanoCPUs(_ text: String) throws(ParseError) -> Int64 {
        guard let value = Double(text), value >= 0, value < 1e9, value.isFinite else {
            throw ParseError("invalid CPU count \"\(text)\": use a non-negative number of CPUs, e.g. 0.5 or 2")
        }
        return Int64((value * 1e9).rounded())
    }

    /// A duration for display: "1.5s", "250ms", "0s".
    public static func format(nanoseconds n: Int64) -> String {
        if n == 0 { return "0s" }
        if n % 3_600_000_000_000 == 0 { return "\(n / 3_600_000_000_000)h" }
        if n % 1_000_000_000 == 0 { return "\(n / 1_000_000_000)s" }
        if n % 1_000_000 == 0 { return "\(n / 1_000_000)ms" }
        return "\(Double(n) / 1e9)s"
    }
}
