import SwarmAPI

/// What a constraint reads of a node. The scheduler's node accounting and
/// ``NodeFacts`` (a stored node as it is) conform.
public protocol ConstraintTarget {
    var id: String { get }
    var hostname: String { get }
    var isManager: Bool { get }
    var os: String { get }
    var arch: String { get }
    var labels: [String: String] { get }
    var engineLabels: [String: String] { get }
}

/// A stored node's facts, for matching constraints without the scheduler's accounting.
public struct NodeFacts: ConstraintTarget, Sendable {
    public var id: String
    public var hostname: String
    public var isManager: Bool
    public var os: String
    public var arch: String
    public var labels: [String: String]
    public var engineLabels: [String: String]

    public init(_ node: SwarmNode) {
        id = node.id
        hostname = node.description_p.hostname
        isManager = node.role == .manager
        os = node.description_p.platform.os
        arch = node.description_p.platform.architecture
        labels = node.spec.annotations.labels
        engineLabels = node.description_p.engineLabels
    }
}

/// A placement constraint, as in SwarmKit: `node.labels.zone==east`, `node.role!=manager`.
public struct Constraint: Sendable, Equatable, CustomStringConvertible {
    public enum Key: Sendable, Equatable {
        case nodeID, hostname, role, os, arch
        case nodeLabel(String)
        case engineLabel(String)
    }

    public var key: Key
    public var equal: Bool
    public var value: String

    public var description: String {
        let k: String
        switch key {
        case .nodeID: k = "node.id"
        case .hostname: k = "node.hostname"
        case .role: k = "node.role"
        case .os: k = "node.platform.os"
        case .arch: k = "node.platform.arch"
        case .nodeLabel(let l): k = "node.labels.\(l)"
        case .engineLabel(let l): k = "engine.labels.\(l)"
        }
        return "\(k)\(equal ? "==" : "!=")\(value)"
    }

    /// Parses one expression. Throws ``PlacementError/malformedConstraint(_:_:)`` with the reason.
    public static func parse(_ text: String) throws(PlacementError) -> Constraint {
        let equal: Bool
        let parts: [Substring]
        if let r = text.range(of: "==") {
            equal = true
            parts = [text[..<r.lowerBound], text[r.upperBound...]]
        } else if let r = text.range(of: "!=") {
            equal = false
            parts = [text[..<r.lowerBound], text[r.upperBound...]]
        } else {
            throw .malformedConstraint(text, "expected an == or != operator")
        }
        let lhs = parts[0].trimmingCharacters(in: .whitespaces)
        let value = parts[1].trimmingCharacters(in: .whitespaces)
        if value.isEmpty { throw .malformedConstraint(text, "the value is empty") }
        if value.contains("==") || value.contains("!=") { throw .malformedConstraint(text, "more than one operator") }
        let key: Key
        switch lhs.lowercased() {
        case "node.id": key = .nodeID
        case "node.hostname": key = .hostname
        case "node.role":
            guard ["manager", "worker"].contains(value.lowercased()) else {
                throw .malformedConstraint(text, "node.role must be manager or worker")
            }
            key = .role
        case "node.platform.os": key = .os
        case "node.platform.arch": key = .arch
        default:
            if lhs.hasPrefix("node.labels."), lhs.count > "node.labels.".count {
                key = .nodeLabel(String(lhs.dropFirst("node.labels.".count)))
            } else if lhs.hasPrefix("engine.labels."), lhs.count > "engine.labels.".count {
                key = .engineLabel(String(lhs.dropFirst("engine.labels.".count)))
            } else {
                throw .malformedConstraint(text, "unknown key \"\(lhs)\" (use node.id, node.hostname, node.role, node.platform.os, node.platform.arch, node.labels.<k> or engine.labels.<k>)")
            }
        }
        return Constraint(key: key, equal: equal, value: value)
    }

    public static func parse(all texts: [String]) throws(PlacementError) -> [Constraint] {
        var out: [Constraint] = []
        for t in texts { out.append(try parse(t)) }
        return out
    }

    /// Whether `node` satisfies the constraint. A missing label never equals anything.
    @inlinable
    public func matches(_ node: some ConstraintTarget) -> Bool {
        let actual: String?
        var caseInsensitive = false
        switch key {
        case .nodeID: actual = node.id
        case .hostname: actual = node.hostname; caseInsensitive = true
        case .role: actual = node.isManager ? "manager" : "worker"; caseInsensitive = true
        case .os: actual = node.os; caseInsensitive = true
        case .arch: actual = node.arch; caseInsensitive = true
        case .nodeLabel(let l): actual = node.labels[l]
        case .engineLabel(let l): actual = node.engineLabels[l]
        }
        let same: Bool
        if let actual {
            same = caseInsensitive ? actual.lowercased() == value.lowercased() : actual == value
        } else {
            same = false
        }
        return equal ? same : !same
    }
}

/// Errors in placement input. Each names what was wrong.
public enum PlacementError: Error, Sendable, Equatable, CustomStringConvertible {
    case malformedConstraint(String, String)
    case malformedResource(String, String)
    case unknownStrategy(String, available: [String])
    case unknownFilter(String, available: [String])
    case impossibleGPURequest(String)

    public var description: String {
        switch self {
        case .malformedConstraint(let c, let why): return "malformed constraint \"\(c)\": \(why)"
        case .malformedResource(let r, let why): return "malformed resource \"\(r)\": \(why)"
        case .unknownStrategy(let s, let available):
            return "unknown strategy \"\(s)\" (loaded: \(available.isEmpty ? "none" : available.joined(separator: ", ")))"
        case .impossibleGPURequest(let why): return "impossible GPU request: \(why)"
        case .unknownFilter(let f, let available):
            return "unknown filter \"\(f)\" (loaded: \(available.isEmpty ? "none" : available.joined(separator: ", ")))"
        }
    }
}

import Foundation
