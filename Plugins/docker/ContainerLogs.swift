import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import SwarmPluginLogs
#if canImport(Glibc)
import Glibc
#endif

/// Follows a container's output (`GET /containers/{id}/logs?follow=1`) and writes it to
/// `stdout.log` and `stderr.log` in the task's work directory, rotated, where the agent's
/// log reader (and so `service logs` and `task logs`) finds it, as for process tasks. The
/// engine multiplexes the two streams in frames: one byte for the stream, three zero bytes,
/// the length as four big-endian bytes, then the bytes.
enum ContainerLogs {
    /// Starts following; ends when the container stops or is removed. `since` (Unix
    /// seconds) skips output already copied before a restart of the node.
    static func follow(_ engine: DockerEngine, container id: String, workDir: String, since: Int) {
        var pipes: [Int32] = []
        for stream in ["stdout", "stderr"] {
            var fds: [Int32] = [0, 0]
            guard pipe(&fds) == 0 else { return }
            _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
            _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
            LogCopier.start(from: fds[0], to: "\(workDir)/\(stream).log")
            pipes.append(fds[1])
        }
        let (out, err) = (pipes[0], pipes[1])
        Task.detached {
            defer {
                close(out)
                close(err)
            }
            let path = "/\(DockerEngine.apiVersion)/containers/\(id)/logs?follow=1&stdout=1&stderr=1&since=\(since)"
            guard let url = URL(httpURLWithSocketPath: engine.socketPath, uri: path) else { return }
            var request = HTTPClientRequest(url: url.absoluteString)
            request.headers.replaceOrAdd(name: "Host", value: "docker")
            do {
                let response = try await engine.client.execute(request, timeout: .hours(24 * 365 * 10))
                guard response.status.code == 200 else { return }
                var demux = Demultiplexer()
                for try await buffer in response.body {
                    demux.feed(buffer) { stream, bytes in
                        let fd = stream == 2 ? err : out
                        bytes.withUnsafeBytes { raw in
                            var written = 0
                            while written < raw.count {
                                let n = write(fd, raw.baseAddress! + written, raw.count - written)
                                if n <= 0 { break }
                                written += n
                            }
                        }
                    }
                }
            } catch {
                // The container went away: nothing more to copy.
            }
        }
    }

    /// Splits the engine's multiplexed stream into (stream, bytes) frames, across buffer
    /// boundaries.
    struct Demultiplexer {
        private var pending: [UInt8] = []

        mutating func feed(_ buffer: ByteBuffer, _ emit: (UInt8, ArraySlice<UInt8>) -> Void) {
            pending += buffer.readableBytesView
            var start = 0
            while pending.count - start >= 8 {
                let size = pending[(start + 4)..<(start + 8)].reduce(0) { $0 << 8 | Int($1) }
                guard pending.count - start >= 8 + size else { break }
                emit(pending[start], pending[(start + 8)..<(start + 8 + size)])
                start += 8 + size
            }
            pending.removeFirst(start)
        }
    }
}
