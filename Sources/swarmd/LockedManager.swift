import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SwarmAPI
import SwarmCA
import SwarmRPC
import Synchronization

/// A manager whose keys are sealed (autolock) and that was started without its unlock
/// key: it serves only its control socket, where every control call is refused with a
/// message that says the manager is locked, and `NodeLock.Unlock` takes the key. A wrong
/// key is refused; the right one ends the wait, and the node starts.
enum LockedManager {
    /// Waits on `socket` for the key that opens the files in `certificates`.
    static func waitForUnlock(socket: String, certificates: String, logger: Logger) async throws -> UnlockKey {
        let (keys, found) = AsyncStream.makeStream(of: UnlockKey.self, bufferingPolicy: .bufferingNewest(1))
        let lock = NodeLockService(certificates: certificates) { found.yield($0) }
        unlink(socket)
        let server = GRPCServer(transport: .http2NIOPosix(address: .unixDomainSocket(path: socket), transportSecurity: .plaintext),
                                services: [lock, RefusingService(descriptors: SwarmControl.Method.descriptors, error: CAError.locked.description)])
        logger.notice("\(CAError.locked.description)")
        let serving = Task { try await server.serve() }
        _ = try await server.listeningAddress
        chmod(socket, 0o600)
        var unlocked: UnlockKey?
        for await key in keys { unlocked = key; break }
        guard let key = unlocked else { serving.cancel(); throw CancellationError() }
        // The unlock call is answered before the socket closes (for up to 2 s).
        server.beginGracefulShutdown()
        let drained = Task { try? await serving.value }
        let deadline = Task { try? await Task.sleep(for: .seconds(2)); serving.cancel() }
        await drained.value
        deadline.cancel()
        unlink(socket)
        logger.notice("unlocked")
        return key
    }
}

/// `NodeLock.Unlock`: checks the key against the node's sealed key file.
struct NodeLockService: SwarmNodeLock.SimpleServiceProtocol {
    let certificates: String
    let unlocked: @Sendable (UnlockKey) -> Void

    func unlock(request: SwarmUnlockRequest, context: ServerContext) async throws -> SwarmUnlockResponse {
        let key: UnlockKey
        do { key = try UnlockKey(parsing: request.unlockKey) } catch {
            throw RPCError(code: .invalidArgument, message: error.description)
        }
        do { _ = try SealedFile.read(certificates + "/" + NodeCredentials.keyFile, key: key) } catch {
            throw RPCError(code: .permissionDenied, message: error.description)
        }
        unlocked(key)
        return SwarmUnlockResponse()
    }
}

/// Answers every method it is given with one error, whatever the request.
struct RefusingService: RegistrableRPCService {
    let descriptors: [MethodDescriptor]
    let error: String

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        let message = error
        for descriptor in descriptors {
            router.registerHandler(forMethod: descriptor, deserializer: RawMessage(), serializer: RawMessage()) { _, _ in
                throw RPCError(code: .failedPrecondition, message: message)
            }
        }
    }
}

/// Bytes as they are, for a handler that never reads its request.
struct RawMessage: MessageSerializer, MessageDeserializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes { Bytes(message) }
    func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> [UInt8] {
        serializedMessageBytes.withUnsafeBytes { Array($0) }
    }
}
