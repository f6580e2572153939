import SwiftASN1
import X509

/// A node's role as its certificate carries it, in the organizational unit (OU), with
/// SwarmKit's names.
public enum NodeRole: String, Sendable, CaseIterable {
    case manager = "swarm-manager"
    case worker = "swarm-worker"
}

/// Who a certificate names: the node ID (CN), its role (OU) and its cluster (O).
public struct NodeIdentity: Sendable, Hashable, CustomStringConvertible {
    public var nodeID: String
    public var role: NodeRole
    public var clusterID: String

    public init(nodeID: String, role: NodeRole, clusterID: String) {
        self.nodeID = nodeID
        self.role = role
        self.clusterID = clusterID
    }

    /// Reads the identity from a node certificate's subject.
    public init(certificate: Certificate) throws(CAError) {
        let names = DistinguishedNameFields(certificate.subject)
        guard let cn = names.commonName, !cn.isEmpty else { throw CAError("the certificate names no node (no CN)") }
        guard let ou = names.organizationalUnit, let role = NodeRole(rawValue: ou) else {
            throw CAError("the certificate of \(cn) carries no node role (OU \(names.organizationalUnit ?? "missing"))")
        }
        guard let o = names.organization, !o.isEmpty else { throw CAError("the certificate of \(cn) names no cluster (no O)") }
        self.init(nodeID: cn, role: role, clusterID: o)
    }

    /// The subject a certificate for this identity carries.
    public var distinguishedName: DistinguishedName {
        get throws {
            try DistinguishedName {
                OrganizationName(clusterID)
                OrganizationalUnitName(role.rawValue)
                CommonName(nodeID)
            }
        }
    }

    public var description: String { "\(nodeID) (\(role == .manager ? "manager" : "worker"), cluster \(clusterID))" }
}

/// The CN, OU and O of a distinguished name (the first of each).
struct DistinguishedNameFields {
    var commonName: String?
    var organizationalUnit: String?
    var organization: String?

    init(_ name: DistinguishedName) {
        for rdn in name {
            for attribute in rdn {
                let value = String(attribute.value)
                switch attribute.type {
                case .RDNAttributeType.commonName where commonName == nil: commonName = value
                case .RDNAttributeType.organizationalUnitName where organizationalUnit == nil: organizationalUnit = value
                case .RDNAttributeType.organizationName where organization == nil: organization = value
                default: break
                }
            }
        }
    }
}

/// Why a certificate, a signing request, a token or a key was refused: a sentence that
/// names what is wrong.
public struct CAError: Error, CustomStringConvertible, Sendable, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
