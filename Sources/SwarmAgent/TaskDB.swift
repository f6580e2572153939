import Foundation
import GRDB
import SwarmAPI
import SwarmCA
import SwiftProtobuf

/// The agent's local record of its assigned tasks and their last observed states, in
/// SQLite. After a restart the agent reads it back: it re-adopts the tasks that must still
/// run, stops those that must not, and reports states that never reached a manager.
public final class TaskDB: Sendable {
    /// A task as the agent last knew it.
    public struct Record: Sendable, Equatable {
        public var task: SwarmTask
        public var status: SwarmTaskStatus?
        /// Whether a manager has acknowledged `status`.
        public var reported: Bool
    }

    /// Opening failed: the file is unreadable, not a database, or corrupt.
    public struct OpenError: Error, CustomStringConvertible {
        public var description: String
    }

    let queue: DatabaseQueue
    public let path: String
    /// Seals each task record (the task's spec names its service, its command, its
    /// environment) with the node's data key; nil keeps them in the clear.
    let cipher: DataCipher?

    public init(path: String, cipher: DataCipher? = nil) throws {
        self.path = path
        self.cipher = cipher
        do {
            queue = try DatabaseQueue(path: path)
            var migrator = DatabaseMigrator()
            migrator.registerMigration("v1") { db in
                try db.create(table: "task") { t in
                    t.primaryKey("id", .text)
                    t.column("spec", .blob).notNull()
                    t.column("status", .blob)
                    t.column("reported", .boolean).notNull().defaults(to: true)
                }
            }
            try migrator.migrate(queue)
            // Every record must decode; a damaged file is refused rather than half-read.
            _ = try Self.load(queue, cipher)
        } catch let e as DatabaseError {
            throw OpenError(description: "task database \(path) cannot be used: \(e.message ?? "\(e)")")
        } catch let e as OpenError {
            throw e
        } catch {
            throw OpenError(description: "task database \(path) cannot be used: \(error)")
        }
    }

    /// Every task recorded, by ID.
    public func all() throws -> [String: Record] {
        try Self.load(queue, cipher)
    }

    static func load(_ queue: DatabaseQueue, _ cipher: DataCipher?) throws -> [String: Record] {
        try queue.read { db in
            var out: [String: Record] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT id, spec, status, reported FROM task") {
                let id: String = row["id"]
                let spec: Data = row["spec"]
                let statusData: Data? = row["status"]
                do {
                    var bytes = Array(spec)
                    if DataCipher.isSealed(bytes) {
                        guard let cipher else { throw OpenError(description: "task database: record \(id) is sealed with a data key, and none was given") }
                        bytes = try cipher.open(bytes)
                    }
                    let task = try SwarmTask(serializedBytes: bytes)
                    let status = try statusData.map { try SwarmTaskStatus(serializedBytes: $0) }
                    out[id] = Record(task: task, status: status, reported: row["reported"])
                } catch {
                    throw OpenError(description: "task database: record \(id) is corrupt (\(error))")
                }
            }
            return out
        }
    }

    /// Records (or refreshes) an assigned task, keeping its observed status.
    public func put(_ task: SwarmTask) throws {
        let plain: [UInt8] = try task.serializedBytes()
        let spec = Data(cipher.map { $0.seal(plain) } ?? plain)
        try queue.write { db in
            try db.execute(sql: """
                INSERT INTO task (id, spec) VALUES (?, ?)
                ON CONFLICT(id) DO UPDATE SET spec = excluded.spec
                """, arguments: [task.id, spec])
        }
    }

    /// Records a task's observed status; `reported` says whether a manager has it.
    public func setStatus(_ id: String, _ status: SwarmTaskStatus, reported: Bool) throws {
        let data = Data(try status.serializedBytes() as [UInt8])
        try queue.write { db in
            try db.execute(sql: "UPDATE task SET status = ?, reported = ? WHERE id = ?", arguments: [data, reported, id])
        }
    }

    /// Marks statuses as acknowledged, unless a newer one was recorded since.
    public func markReported(_ statuses: [String: SwarmTaskStatus]) throws {
        try queue.write { db in
            for (id, status) in statuses {
                let data = Data(try status.serializedBytes() as [UInt8])
                try db.execute(sql: "UPDATE task SET reported = 1 WHERE id = ? AND status = ?", arguments: [id, data])
            }
        }
    }

    public func delete(_ id: String) throws {
        try queue.write { db in try db.execute(sql: "DELETE FROM task WHERE id = ?", arguments: [id]) }
    }
}
