import SwarmAPI

/// SwarmKit's generic resource syntax: `fpga=2,gpu=UUID1,gpu=UUID2`. A numeric value is a
/// discrete count; anything else names one unit of a named set.
public enum GenericResources {
    public static func parse(_ text: String) throws(PlacementError) -> [SwarmGenericResource] {
        var out: [SwarmGenericResource] = []
        var discrete: Set<String> = []
        var named: Set<String> = []
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let part = item.trimmingCharacters(in: .whitespaces)
            let kv = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard kv.count == 2 else { throw .malformedResource(text, "\"\(part)\" is not kind=value") }
            let kind = String(kv[0])
            let value = String(kv[1])
            guard !kind.isEmpty, kind.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" || $0 == "." }) else {
                throw .malformedResource(text, "bad kind \"\(kind)\"")
            }
            guard !value.isEmpty else { throw .malformedResource(text, "\(kind) has no value") }
            var r = SwarmGenericResource()
            r.kind = kind
            if let n = Int64(value) {
                guard n > 0 else { throw .malformedResource(text, "\(kind)=\(value): a count must be positive") }
                guard !named.contains(kind), !discrete.contains(kind) else {
                    throw .malformedResource(text, "\(kind) is given more than once as a count, or as both a count and named units")
                }
                discrete.insert(kind)
                r.value = n
            } else {
                guard !discrete.contains(kind) else {
                    throw .malformedResource(text, "\(kind) is given both as a count and as named units")
                }
                named.insert(kind)
                r.value = 1
                r.named = value
            }
            out.append(r)
        }
        return out
    }

    /// Totals per kind (each named unit counts one).
    public static func totals(_ resources: [SwarmGenericResource]) -> [String: Int64] {
        var t: [String: Int64] = [:]
        for r in resources { t[r.kind, default: 0] += r.named.isEmpty ? r.value : 1 }
        return t
    }
}

import Foundation
