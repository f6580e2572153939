import GRPCCore
import GRPCNIOTransportHTTP2
import SwarmAPI
import SwarmCA
import SwarmRPC
import SwarmRaftNode
import SwiftProtobuf
import Synchronization

/// The leader check, in one place for every call it guards: a server interceptor, so that
/// no handler repeats it (the authorization of a later change belongs here too).
///
/// - ``forward`` (the control API): on a manager that is not the leader, the call is
///   forwarded whole to the leader, its messages passed through as they are, and the
///   leader's answer, or its error, is returned.
/// - ``require`` (the dispatcher): a manager that is not the leader refuses the call as
///   `unavailable`, with the leader's address in the metadata, so that agents move on.
public struct LeaderInterceptor: ServerInterceptor {
    public enum Mode: Sendable {
        case forward
        case require
    }

    let node: any ManagerNode
    let mode: Mode
    let security: ClientSecurity

    /// - Parameter security: how forwarded calls reach the leader (swarmd: mutual TLS with
    ///   this manager's certificate, which the leader authorizes).
    public init(node: any ManagerNode, mode: Mode, security: ClientSecurity = .plaintext) {
        self.node = node
        self.mode = mode
        self.security = security
    }

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        if node.isLeader { return try await next(request, context) }
        let status = node.status
        let leader = status.leader == 0 ? nil : status.members[status.leader]
        guard mode == .forward, let leader else {
            throw RaftNodeError.notLeader(leaderID: status.leader, leaderAddr: leader)
        }
        guard let (host, port) = NetworkAddress.split(leader) else {
            throw RPCError(code: .unavailable, message: "the leader's address \(leader) cannot be reached")
        }
        let descriptor = context.descriptor
        // The control API's calls send one request (unary and server-streaming calls): it is
        // read here, while the call's request stream is open.
        var messages: [Input] = []
        for try await message in request.messages { messages.append(message) }
        let sent = messages
        if Self.streamingMethods.contains(descriptor) {
            // Streamed as the leader answers (`service logs --follow` goes on for good).
            return StreamingServerResponse(of: Output.self) { writer in
                try await Self.forward(sent, descriptor, host: host, port: port, security: security) { try await writer.write($0) }
            }
        }
        // A unary call is forwarded before it is answered, so that the leader's error is
        // this call's error, with no response headers sent ahead of it.
        let answers = Mutex<[Output]>([])
        let trailing = try await Self.forward(sent, descriptor, host: host, port: port, security: security) { m in answers.withLock { $0.append(m) } }
        let answer = answers.withLock { $0 }
        guard answer.count == 1 else {
            throw RPCError(code: .internalError, message: "the leader answered a unary call with \(answer.count) messages")
        }
        return StreamingServerResponse(single: ServerResponse(message: answer[0], trailingMetadata: trailing))
    }

    /// The control API's server-streaming methods; the others are unary.
    static let streamingMethods: Set<MethodDescriptor> = [SwarmControl.Method.TaskLogs.descriptor]

    /// Calls `descriptor` on the leader with `messages`, hands each message of the answer to
    /// `receive`, and returns the answer's trailing metadata. The leader's error (a refused
    /// call) is thrown as it is.
    static func forward<Input: Sendable, Output: Sendable>(
        _ messages: [Input], _ descriptor: MethodDescriptor, host: String, port: Int, security: ClientSecurity,
        receive: @escaping @Sendable (Output) async throws -> Void
    ) async throws -> Metadata {
        let transport = try security.transport(host: host, port: port)
        return try await withGRPCClient(transport: transport) { client in
            let upstream = StreamingClientRequest(of: Input.self) { out in
                for message in messages { try await out.write(message) }
            }
            return try await client.bidirectionalStreaming(
                request: upstream, descriptor: descriptor, serializer: PassThroughSerializer<Input>(),
                deserializer: PassThroughDeserializer<Output>(), options: .defaults
            ) { response in
                let contents: StreamingClientResponse<Output>.Contents
                switch response.accepted {
                case .success(let accepted): contents = accepted
                case .failure(let error): throw LeaderInterceptor.passedOn(error)
                }
                var trailing: Metadata = [:]
                for try await part in contents.bodyParts {
                    switch part {
                    case .message(let message): try await receive(message)
                    case .trailingMetadata(let metadata): trailing = metadata
                    }
                }
                return LeaderInterceptor.ownMetadata(trailing)
            }
        }
    }
}

extension LeaderInterceptor {
    /// The leader's error as this manager answers it: its code and message, with only the
    /// call's own metadata. (Not with the leader's error as its cause: an `RPCError` takes
    /// in its cause's metadata, the transport's headers among them, and a server that
    /// writes those in its trailers breaks the connection.)
    static func passedOn(_ error: RPCError) -> RPCError {
        RPCError(code: error.code, message: error.message, metadata: ownMetadata(error.metadata))
    }

    /// Metadata without the transport's reserved keys (`grpc-*`, pseudo-headers,
    /// `content-type`, `te`).
    static func ownMetadata(_ metadata: Metadata) -> Metadata {
        var own = Metadata()
        for (key, value) in metadata {
            let k = key.lowercased()
            if k.hasPrefix("grpc-") || k.hasPrefix(":") || k == "content-type" || k == "te" || k == "user-agent" { continue }
            switch value {
            case .string(let v): own.addString(v, forKey: key)
            case .binary(let v): own.addBinary(v, forKey: key)
            }
        }
        return own
    }
}

/// Serializes whatever protobuf message the forwarded call carries.
struct PassThroughSerializer<Message>: MessageSerializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ message: Message) throws -> Bytes {
        guard let m = message as? any SwiftProtobuf.Message else {
            throw RPCError(code: .internalError, message: "cannot forward a \(Message.self): not a protobuf message")
        }
        let bytes: [UInt8] = try m.serializedBytes()
        return Bytes(bytes)
    }
}

/// Decodes the leader's answer as the message type the call returns.
struct PassThroughDeserializer<Message>: MessageDeserializer {
    func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> Message {
        guard let type = Message.self as? any SwiftProtobuf.Message.Type else {
            throw RPCError(code: .internalError, message: "cannot forward a \(Message.self): not a protobuf message")
        }
        let bytes = serializedMessageBytes.withUnsafeBytes { Array($0) }
        guard let message = try type.init(serializedBytes: bytes) as? Message else {
            throw RPCError(code: .internalError, message: "the leader answered with another message type")
        }
        return message
    }
}

extension LeaderInterceptor {
    /// What a manager's servers apply: the control API forwarded to the leader, the
    /// dispatcher refused away from it. (The Raft API forwards proposals itself.)
    public static func pipeline(_ node: any ManagerNode, security: ClientSecurity = .plaintext) -> [ConditionalInterceptor<any ServerInterceptor>] {
        [
            .apply(LeaderInterceptor(node: node, mode: .forward, security: security), to: .services([SwarmControl.descriptor])),
            .apply(LeaderInterceptor(node: node, mode: .require), to: .services([SwarmDispatcher.descriptor])),
        ]
    }
}
