import GRPCCore
import SwarmAPI
import SwarmRPC

extension ControlService {
    /// Streams the output of tasks (by ID or prefix) or of a service's tasks. The leader
    /// asks the nodes that hold them through the ``LogBroker`` (other managers forward the
    /// call, through ``LeaderInterceptor``).
    public func taskLogs(request: SwarmTaskLogsRequest, response: RPCWriter<SwarmTaskLogsResponse>, context: ServerContext) async throws {
        let tasks = try logTasks(request)
        let id = Identifiers.make()
        let events = logs.subscribe(id: id, tasks: tasks, follow: request.follow, tail: request.tail)
        defer { logs.unsubscribe(id) }
        for await event in events {
            switch event {
            case .lines(let lines):
                try await response.write(.with { $0.lines = lines })
            case .warning(let text):
                try await response.write(.with {
                    $0.lines = [.with { $0.stream = .stderr; $0.data = Data("warning: \(text)\n".utf8) }]
                })
            }
        }
    }

    func logTasks(_ request: SwarmTaskLogsRequest) throws -> [SwarmTask] {
        if !request.serviceID.isEmpty {
            if !request.taskIds.isEmpty { throw ControlError.invalidArgument("give tasks or a service, not both") }
            let service = try lookup(SwarmService.self, request.serviceID)
            return store.view().find(SwarmTask.self, .service(service.id)).filter { !$0.nodeID.isEmpty }
        }
        if request.taskIds.isEmpty { throw ControlError.invalidArgument("give at least one task or a service") }
        return try request.taskIds.map { try lookup(SwarmTask.self, $0) }
    }
}

import Foundation
import SwarmStore
import SwiftProtobuf
