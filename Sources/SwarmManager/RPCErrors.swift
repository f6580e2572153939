import GRPCCore
import SwarmStore

// The manager's errors map themselves to RPC errors in one place: grpc-swift converts an
// `RPCErrorConvertible` error wherever a handler throws it, and the RPC error keeps it as
// its cause. (The Raft node's errors conform beside their type, in SwarmRaftNode.)

extension ControlError: RPCErrorConvertible {
    public var rpcErrorCode: RPCError.Code {
        switch self {
        case .invalidArgument: return .invalidArgument
        case .notFound: return .notFound
        case .failedPrecondition: return .failedPrecondition
        case .unavailable: return .unavailable
        }
    }

    public var rpcErrorMessage: String { description }
    public var rpcErrorCause: (any Error)? { self }
}

extension StoreError: RPCErrorConvertible {
    public var rpcErrorCode: RPCError.Code {
        switch self {
        case .notFound, .noMatch: return .notFound
        case .sequenceConflict: return .failedPrecondition
        case .watcherFellBehind: return .unavailable
        case .corrupt: return .dataLoss
        case .exists, .nameConflict, .ambiguous, .invalidObject: return .invalidArgument
        }
    }

    public var rpcErrorMessage: String { description }
    public var rpcErrorCause: (any Error)? { self }
}
