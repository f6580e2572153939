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
    public static func allocationSVG(_ runs: [ReplayRun], title: String) -> String {
        let data = curves(runs)
        let (w, h, left, right, top, bottom) = (900.0, 560.0, 70.0, 180.0, 40.0, 50.0)
        let xs = data.flatMap { $0.1.map { Double($0.x) } }
        let ys = data.flatMap { $0.1.map(\.alloc) }
        let xMax = max(10, (xs.max() ?? 130).rounded(.up))
        let yMin = max(0, ((ys.min() ?? 0) / 10).rounded(.down) * 10)
        let yMax = min(100, max(yMin + 10, ((ys.max() ?? 100) / 10).rounded(.up) * 10))
        func px(_ x: Double) -> Double { left + (w - left - right) * x / xMax }
        func py(_ y: Double) -> Double { top + (h - top - bottom) * (1 - (y - yMin) / (yMax - yMin)) }
        let colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf"]
        var svg = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(w))" height="\(Int(h))" font-family="sans-serif" font-size="12">
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
        return svg + "</svg>\n"
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
