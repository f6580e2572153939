import GRPCCore
import Logging
import ServiceLifecycle

/// One long-lived part of swarmd as a swift-service-lifecycle service: `body` runs until
/// it returns or the group shuts down.
struct NodePart: Service, CustomStringConvertible {
    /// What the part does on graceful shutdown.
    enum OnShutdown: Sendable {
        /// It is cancelled, and ends.
        case cancel
        /// `request` asks it to finish (a server stops accepting and drains its calls).
        case request(@Sendable () -> Void)
        /// The body follows the graceful shutdown itself (it runs a group of its own).
        case followedByBody
    }

    let description: String
    let body: @Sendable () async throws -> Void
    let onShutdown: OnShutdown

    init(_ name: String, onShutdown: OnShutdown = .cancel, _ body: @escaping @Sendable () async throws -> Void) {
        description = name
        self.body = body
        self.onShutdown = onShutdown
    }

    init(_ name: String, shutdown: @escaping @Sendable () -> Void, _ body: @escaping @Sendable () async throws -> Void) {
        self.init(name, onShutdown: .request(shutdown), body)
    }

    func run() async throws {
        defer { Logger(label: "swarmd").debug("\(description) stopped") }
        do {
            switch onShutdown {
            case .cancel: try await cancelWhenGracefulShutdown { try await body() }
            case .request(let shutdown): try await withGracefulShutdownHandler { try await body() } onGracefulShutdown: { shutdown() }
            case .followedByBody: try await body()
            }
        } catch is CancellationError {
            // Cancelled because the group shuts down: a normal end.
        }
    }

    /// A gRPC server. On graceful shutdown it stops accepting calls and finishes those it
    /// has for up to `drain`; then it is cancelled, which ends the long-lived streams
    /// (sessions, assignments, log subscriptions) that would otherwise hold it open.
    static func server<T: ServerTransport>(_ name: String, _ server: GRPCServer<T>, drain: Duration = .seconds(1)) -> NodePart {
        NodePart(name, onShutdown: .followedByBody) {
            let serving = Task { try await server.serve() }
            try await withTaskCancellationHandler {
                try await withGracefulShutdownHandler { try await serving.value } onGracefulShutdown: {
                    server.beginGracefulShutdown()
                    Task {
                        try await Task.sleep(for: drain)
                        serving.cancel()
                    }
                }
            } onCancel: {
                serving.cancel()
            }
        }
    }
}

extension ServiceGroupConfiguration.ServiceConfiguration {
    /// A part whose end, even a normal one, shuts the whole group down gracefully.
    static func ending(_ part: NodePart) -> Self {
        .init(service: part, successTerminationBehavior: .gracefullyShutdownGroup,
              failureTerminationBehavior: .gracefullyShutdownGroup)
    }
}
