import Foundation

/// Summaries, CSV files and the allocation plot of a set of replay runs.
public enum ReplayReport {
    /// Mean and sample standard deviation.
    public static func meanSD(_ values: [Double]) -> (mean: Double, sd: Double) {
        guard !values.isEmpty else { return (.nan, .nan) }
        let mean = values.reduce(0, +) / Double(values.count)
        guard values.count > 1 else { return (mean, 0) }
        let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count - 1)
        return (mean, variance.squareRoot())
    }

    /// `policy,seed,alloc100,alloc130,frag90`, one row per run.
    public static func summaryCSV(_ runs: [ReplayRun]) -> String {
        var out = "policy,seed,alloc100,alloc130,frag90\n"
        for r in runs {
            out += "\(r.policy),\(r.seed),\(fmt(r.allocation(at: 100))),\(fmt(r.allocation(at: 130))),\(fmt(r.fragmentation(at: 90)))\n"
        }
        return out
    }

    /// `policy,arrived,alloc_mean,alloc_sd,frag_mean`: each policy's curve, averaged over
    /// its seeds, at every whole arrived percentage.
    public static func curvesCSV(_ runs: [ReplayRun]) -> String {
        var out = "policy,arrived,alloc_mean,alloc_sd,frag_mean\n"
        for (policy, points) in curves(runs) {
            for p in points { out += "\(policy),\(p.x),\(fmt(p.alloc)),\(fmt(p.sd)),\(fmt(p.frag))\n" }
        }
        return out
    }

    /// Per policy (in first-seen order): (arrived %, mean allocation, its SD, mean frag).
    public static func curves(_ runs: [ReplayRun]) -> [(String, [(x: Int, alloc: Double, sd: Double, frag: Double)])] {
        var order: [String] = []
        for r in runs where !order.contains(r.policy) { order.append(r.policy) }
        return order.map { policy in
            let mine = runs.filter { $0.policy == policy }
            let top = mine.flatMap(\.arrivedPct).max() ?? 0
            let points = (0...max(0, top)).compactMap { x -> (x: Int, alloc: Double, sd: Double, frag: Double)? in
                let allocs = mine.compactMap { $0.allocation(at: x) }
                let frags = mine.compactMap { $0.fragmentation(at: x) }
                guard !allocs.isEmpty else { return nil }
                let a = meanSD(allocs)
                return (x, a.mean, a.sd, meanSD(frags).mean)
            }
            return (policy, points)
        }
    }

    static func fmt(_ v: Double?) -> String { v.map { String(format: "%.4f", $0) } ?? "" }

    /// An SVG line plot of allocation against arrived workload, one curve per policy.
    /// With `comparison` (from ``PairedTest``), a second panel below shows the difference
    /// of the two policies' mean allocation at every arrived percentage, and the paired
    /// test's figures.
    public static func allocationSVG(_ runs: [ReplayRun], title: String, comparison: [PairedComparison] = []) -> String {
        let data = curves(runs)
        let (w, h, left, right, top, bottom) = (900.0, 560.0, 70.0, 180.0, 40.0, 50.0)
        let panel = comparison.isEmpty ? 0.0 : 300.0
        let xs = data.flatMap { $0.1.map { Double($0.x) } }
        let ys = data.flatMap { $0.1.map(\.alloc) }
        let xMax = max(10, (xs.max() ?? 130).rounded(.up))
        let yMin = max(0, ((ys.min() ?? 0) / 10).rounded(.down) * 10)
        let yMax = min(100, max(yMin + 10, ((ys.max() ?? 100) / 10).rounded(.up) * 10))
        func px(_ x: Double) -> Double { left + (w - left - right) * x / xMax }
        func py(_ y: Double) -> Double { top + (h - top - bottom) * (1 - (y - yMin) / (yMax - yMin)) }
        let colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf"]
        var svg = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(w))" height="\(Int(h + panel))" font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(Int(w / 2))" y="22" text-anchor="middle" font-size="15">\(escape(title))</text>

        """
        for k in 0...10 {
            let y = yMin + (yMax - yMin) * Double(k) / 10
            svg += "<line x1=\"\(px(0))\" y1=\"\(py(y))\" x2=\"\(px(xMax))\" y2=\"\(py(y))\" stroke=\"#eee\"/>"
            svg += "<text x=\"\(left - 8)\" y=\"\(py(y) + 4)\" text-anchor=\"end\">\(String(format: "%.0f", y))</text>\n"
        }
        for x in stride(from: 0.0, through: xMax, by: 10) {
            svg += "<text x=\"\(px(x))\" y=\"\(h - bottom + 18)\" text-anchor=\"middle\">\(Int(x))</text>\n"
        }
        svg += "<line x1=\"\(px(0))\" y1=\"\(py(yMin))\" x2=\"\(px(xMax))\" y2=\"\(py(yMin))\" stroke=\"black\"/>"
        svg += "<line x1=\"\(px(0))\" y1=\"\(py(yMin))\" x2=\"\(px(0))\" y2=\"\(py(yMax))\" stroke=\"black\"/>\n"
        svg += "<text x=\"\(px(xMax / 2))\" y=\"\(h - 12)\" text-anchor=\"middle\">arrived GPU workload (% of capacity)</text>\n"
        svg += "<text transform=\"translate(18 \(py((yMin + yMax) / 2))) rotate(-90)\" text-anchor=\"middle\">GPU allocation (%)</text>\n"
        for (i, (policy, points)) in data.enumerated() {
            let color = colors[i % colors.count]
            let path = points.map { "\(px(Double($0.x))),\(py(min(max($0.alloc, yMin), yMax)))" }.joined(separator: " ")
            svg += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.8\" points=\"\(path)\"/>\n"
            let ly = top + 20 + Double(i) * 20
            svg += "<line x1=\"\(w - right + 15)\" y1=\"\(ly)\" x2=\"\(w - right + 40)\" y2=\"\(ly)\" stroke=\"\(color)\" stroke-width=\"3\"/>"
            svg += "<text x=\"\(w - right + 46)\" y=\"\(ly + 4)\">\(escape(policy))</text>\n"
        }
        if let first = comparison.first {
            svg += differencePanel(data, first.a, first.b, comparison, x: (left, w - right, xMax), y: (h + 20, h + 200))
        }
        return svg + "</svg>\n"
    }

    /// The lower panel: mean allocation of `a` minus `b` against arrived %, a zero line,
    /// and the paired test per measure.
    static func differencePanel(_ data: [(String, [(x: Int, alloc: Double, sd: Double, frag: Double)])], _ a: String, _ b: String,
                                _ comparison: [PairedComparison], x: (Double, Double, Double), y: (Double, Double)) -> String {
        let ca = Dictionary(data.first { $0.0 == a }?.1.map { ($0.x, $0.alloc) } ?? [], uniquingKeysWith: { l, _ in l })
        let cb = Dictionary(data.first { $0.0 == b }?.1.map { ($0.x, $0.alloc) } ?? [], uniquingKeysWith: { l, _ in l })
        let points = ca.keys.filter { cb[$0] != nil }.sorted().map { (x: $0, d: ca[$0]! - cb[$0]!) }
        let bound = max(0.5, ((points.map { abs($0.d) }.max() ?? 0.5) * 2).rounded(.up) / 2)
        func px(_ v: Double) -> Double { x.0 + (x.1 - x.0) * v / x.2 }
        func py(_ v: Double) -> Double { y.0 + (y.1 - y.0) * (1 - (v + bound) / (2 * bound)) }
        var svg = "<text x=\"\(px(x.2 / 2))\" y=\"\(y.0 - 2)\" text-anchor=\"middle\">\(escape(a)) − \(escape(b)): mean allocation difference (points), paired by seed</text>\n"
        for v in [-bound, -bound / 2, 0, bound / 2, bound] {
            svg += "<line x1=\"\(px(0))\" y1=\"\(py(v))\" x2=\"\(px(x.2))\" y2=\"\(py(v))\" stroke=\"\(v == 0 ? "black" : "#eee")\"/>"
            svg += "<text x=\"\(x.0 - 8)\" y=\"\(py(v) + 4)\" text-anchor=\"end\">\(String(format: "%+.2f", v))</text>\n"
        }
        for v in stride(from: 0.0, through: x.2, by: 10) {
            svg += "<text x=\"\(px(v))\" y=\"\(y.1 + 16)\" text-anchor=\"middle\">\(Int(v))</text>\n"
        }
        let path = points.map { "\(px(Double($0.x))),\(py(min(max($0.d, -bound), bound)))" }.joined(separator: " ")
        svg += "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.8\" points=\"\(path)\"/>\n"
        for (i, c) in comparison.enumerated() {
            let text = String(format: "%@: %+.2f (SD %.2f, t %.2f, p %.3g, %d above / %d below)",
                              c.measure, c.mean, c.sd, c.t, c.p, c.above, c.below)
            svg += "<text x=\"\(x.0)\" y=\"\(y.1 + 40 + Double(i) * 16)\">\(escape(text))</text>\n"
        }
        return svg
    }

    /// `measure,a,b,mean_a,mean_b,mean_diff,sd_diff,t,p,above,below,n`, one row per measure.
    public static func comparisonCSV(_ comparison: [PairedComparison]) -> String {
        var out = "measure,a,b,mean_a,mean_b,mean_diff,sd_diff,t,p,above,below,n\n"
        for c in comparison {
            out += "\(c.measure),\(c.a),\(c.b),\(fmt(c.meanA)),\(fmt(c.meanB)),\(fmt(c.mean)),\(fmt(c.sd)),\(fmt(c.t)),"
            out += "\(String(format: "%.6g", c.p)),\(c.above),\(c.below),\(c.differences.count)\n"
        }
        return out
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
