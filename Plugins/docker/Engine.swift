import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// A blocking client of the Docker Engine API (v1.41) over its unix socket, built on
/// async-http-client. The executor's calls run on threads of their own (the host's
/// `ExecutorThreads`), so waiting for a response here holds no cooperative thread.
final class DockerEngine: Sendable {
    /// The engine's socket path, from `unix:///path`, a bare path, or the default.
    let socketPath: String
    let client: HTTPClient
    static let apiVersion = "v1.41"

    /// An answer of the engine that is not a success, with the engine's own message.
    struct Failure: Error, CustomStringConvertible {
        var status: Int
        var message: String
        var description: String { message }
    }

    /// Why the configured host cannot be used (not a unix socket), or nil.
    let unusable: String?

    init(host: String?) {
        var path = host.flatMap { $0.isEmpty ? nil : $0 } ?? "/var/run/docker.sock"
        if path.hasPrefix("unix://") { path.removeFirst("unix://".count) }
        unusable = path.hasPrefix("/") ? nil : "DOCKER_HOST \(host ?? "") is not a unix socket (only unix:///path is supported)"
        socketPath = path
        client = Self.sharedClient
    }

    /// The plugin's client, for the life of the process (plugins are never unloaded), with
    /// no practical limit on connections: every running container holds one open for its
    /// logs, and the events stream one more. `HTTPClient.shared` keeps at most 8 per host
    /// and queues the rest, so the ninth container's calls would wait forever.
    static let sharedClient: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 100_000)
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    /// Sends one request and waits for the whole answer.
    func call(_ method: HTTPMethod, _ path: String, query: [(String, String)] = [], json body: Any? = nil,
              timeout: TimeAmount = .seconds(30)) throws -> (status: Int, body: Data) {
        var uri = "/\(Self.apiVersion)\(path)"
        if !query.isEmpty {
            var c = URLComponents()
            c.queryItems = query.map { URLQueryItem(name: $0.0, value: $0.1) }
            uri += "?" + (c.percentEncodedQuery ?? "")
        }
        guard let url = URL(httpURLWithSocketPath: socketPath, uri: uri) else {
            throw Failure(status: 0, message: "cannot address the engine at \(socketPath)")
        }
        var request = try HTTPClient.Request(url: url, method: method)
        // HTTP/1.1 wants a Host; a unix-socket URL has none.
        request.headers.replaceOrAdd(name: "Host", value: "docker")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .data(try JSONSerialization.data(withJSONObject: body))
        }
        let response: HTTPClient.Response
        do {
            response = try client.execute(request: request, deadline: .now() + timeout).wait()
        } catch {
            throw Failure(status: 0, message: "docker engine at \(socketPath) unreachable: \(error)")
        }
        let data = response.body.map { Data($0.readableBytesView) } ?? Data()
        return (Int(response.status.code), data)
    }

    /// Like ``call(_:_:query:json:timeout:)``, but a status outside `accept` throws with
    /// the engine's message.
    @discardableResult
    func expect(_ accept: Set<Int>, _ method: HTTPMethod, _ path: String, query: [(String, String)] = [],
                json body: Any? = nil, timeout: TimeAmount = .seconds(30)) throws -> Data {
        let (status, data) = try call(method, path, query: query, json: body, timeout: timeout)
        guard accept.contains(status) else { throw Failure(status: status, message: Self.message(data, status: status)) }
        return data
    }

    /// The engine's error message: `{"message": "..."}`, or the body as text.
    static func message(_ data: Data, status: Int) -> String {
        if let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let m = object["message"] as? String {
            return m
        }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? "the engine answered \(status)" : text
    }

    static func object(_ data: Data) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
    }

    /// Why the engine does not answer, or nil when it does.
    func unreachable() -> String? {
        if let unusable { return unusable }
        // No socket: say so at once (a connection attempt would retry until its deadline).
        if !FileManager.default.fileExists(atPath: socketPath) { return "no docker engine socket at \(socketPath)" }
        do {
            let (status, data) = try call(.GET, "/_ping", timeout: .seconds(3))
            return status == 200 ? nil : "docker engine at \(socketPath) answered \(status): \(Self.message(data, status: status))"
        } catch {
            return "\(error)"
        }
    }

    /// Makes sure `image` is present: pulls it if missing. A failed pull throws with the
    /// registry's message (which the engine reports inside its progress stream).
    func ensureImage(_ image: String) throws {
        let (status, _) = try call(.GET, "/images/\(Self.escape(image))/json")
        if status == 200 { return }
        let (name, tag) = Self.split(image)
        let data: Data
        do {
            data = try expect([200], .POST, "/images/create", query: [("fromImage", name), ("tag", tag)], timeout: .minutes(30))
        } catch let e as Failure {
            throw Failure(status: e.status, message: "pulling \(image): \(e.message)")
        }
        for line in data.split(separator: UInt8(ascii: "\n")) {
            if let error = Self.object(Data(line))["error"] as? String {
                throw Failure(status: 0, message: "pulling \(image): \(error)")
            }
        }
        let (after, _) = try call(.GET, "/images/\(Self.escape(image))/json")
        if after != 200 { throw Failure(status: after, message: "pulling \(image) did not make it available") }
    }

    /// "name:tag" split as the engine's pull wants it; a digest or no tag means latest.
    static func split(_ image: String) -> (String, String) {
        if image.contains("@") { return (image, "") }
        if let colon = image.lastIndex(of: ":"), !image[colon...].contains("/") {
            return (String(image[..<colon]), String(image[image.index(after: colon)...]))
        }
        return (image, "latest")
    }

    static func escape(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? s
    }
}
