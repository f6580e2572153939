import Foundation

/// Two policies compared on one measure, paired by seed: the same seed gives both the same
/// arrivals and node order, so the per-seed difference removes the workload's own noise.
public struct PairedComparison: Sendable, Equatable {
    /// The policies: the difference is `a − b`.
    public var a: String
    public var b: String
    /// The measure ("alloc@100", "alloc@130", "frag@90").
    public var measure: String
    /// `a − b`, per seed present in both, in seed order.
    public var differences: [Double]
    public var meanA: Double
    public var meanB: Double
    /// Mean and sample SD of the differences.
    public var mean: Double
    public var sd: Double
    /// Student's t for the mean difference (n − 1 degrees of freedom) and its two-sided p.
    public var t: Double
    public var p: Double
    /// Seeds where `a` is above `b`, and below.
    public var above: Int
    public var below: Int
}

/// The paired t-test over seeds, and the Student t distribution it needs.
public enum PairedTest {
    /// Compares `a` with `b` on `measure`, over the seeds both have a value for.
    public static func compare(_ runs: [ReplayRun], _ a: String, _ b: String, measure: String,
                               _ value: (ReplayRun) -> Double?) -> PairedComparison {
        var byA: [UInt64: Double] = [:], byB: [UInt64: Double] = [:]
        for r in runs {
            if r.policy == a, let v = value(r) { byA[r.seed] = v }
            if r.policy == b, let v = value(r) { byB[r.seed] = v }
        }
        let seeds = Set(byA.keys).intersection(byB.keys).sorted()
        let d = seeds.map { byA[$0]! - byB[$0]! }
        let (mean, sd) = ReplayReport.meanSD(d)
        let (t, p) = test(mean: mean, sd: sd, n: d.count)
        return PairedComparison(a: a, b: b, measure: measure, differences: d,
                                meanA: ReplayReport.meanSD(seeds.map { byA[$0]! }).mean,
                                meanB: ReplayReport.meanSD(seeds.map { byB[$0]! }).mean,
                                mean: mean, sd: sd, t: t, p: p,
                                above: d.filter { $0 > 0 }.count, below: d.filter { $0 < 0 }.count)
    }

    /// t and the two-sided p for a mean difference with sample SD `sd` over `n` pairs
    /// (NaN for fewer than two pairs).
    public static func test(mean: Double, sd: Double, n: Int) -> (t: Double, p: Double) {
        guard n >= 2, mean.isFinite, sd.isFinite else { return (.nan, .nan) }
        if sd == 0 { return mean == 0 ? (0, 1) : (mean > 0 ? .infinity : -.infinity, 0) }
        let t = mean / (sd / Double(n).squareRoot())
        return (t, twoSidedP(t: t, df: Double(n - 1)))
    }

    /// P(|T| ≥ |t|) for Student's t with `df` degrees of freedom: I_{df/(df+t²)}(df/2, 1/2).
    public static func twoSidedP(t: Double, df: Double) -> Double {
        guard t.isFinite else { return t.isNaN ? .nan : 0 }
        return regularizedIncompleteBeta(df / (df + t * t), df / 2, 0.5)
    }

    /// The regularized incomplete beta function I_x(a, b), by its continued fraction
    /// (modified Lentz), using the symmetry I_x(a, b) = 1 − I_{1−x}(b, a) where it
    /// converges faster.
    public static func regularizedIncompleteBeta(_ x: Double, _ a: Double, _ b: Double) -> Double {
        if x <= 0 { return 0 }
        if x >= 1 { return 1 }
        let logBeta: Double = lgamma(a + b) - lgamma(a) - lgamma(b)
        let logPowers: Double = a * log(x) + b * log(1 - x)
        let front = exp(logBeta + logPowers)
        if x > (a + 1) / (a + b + 2) { return 1 - regularizedIncompleteBeta(1 - x, b, a) }
        let tiny = 1e-300
        var c = 1.0, d = 1 - (a + b) * x / (a + 1)
        if abs(d) < tiny { d = tiny }
        d = 1 / d
        var f = d
        for m in 1...300 {
            let m = Double(m)
            // Even step.
            var num = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
            d = 1 + num * d; if abs(d) < tiny { d = tiny }; d = 1 / d
            c = 1 + num / c; if abs(c) < tiny { c = tiny }
            f *= d * c
            // Odd step.
            num = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
            d = 1 + num * d; if abs(d) < tiny { d = tiny }; d = 1 / d
            c = 1 + num / c; if abs(c) < tiny { c = tiny }
            let delta = d * c
            f *= delta
            if abs(delta - 1) < 1e-15 { break }
        }
        return front * f / a
    }
}
