#if canImport(Glibc)
import Glibc
#endif

/// Copies a task's output from a pipe to a log file, rotating it at `limit` bytes
/// (`file.1` is the newest old file, up to `file.<keep>`), on a thread of its own until the
/// pipe's write end closes. The executors write `stdout.log` and `stderr.log` in the task's
/// work directory, where the agent's log reader finds them.
public enum LogCopier {
    /// Log files rotate at this size; `keepLogs` older files are kept.
    public static let logLimit = 10 << 20
    public static let keepLogs = 3

    public static func start(from fd: Int32, to path: String, limit: Int = logLimit, keep: Int = keepLogs) {
        let thread = Thread(fd: fd, path: path, limit: limit, keep: keep)
        thread.start()
    }

    final class Thread: @unchecked Sendable {
        let fd: Int32
        let path: String
        let limit: Int
        let keep: Int

        init(fd: Int32, path: String, limit: Int, keep: Int) {
            self.fd = fd
            self.path = path
            self.limit = limit
            self.keep = keep
        }

        func start() {
            var tid = pthread_t()
            let box = Unmanaged.passRetained(self).toOpaque()
            pthread_create(&tid, nil, { arg in
                let me = Unmanaged<LogCopier.Thread>.fromOpaque(arg!).takeRetainedValue()
                me.run()
                return nil
            }, box)
            pthread_detach(tid)
        }

        func run() {
            var out = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            var size = Int(lseek(out, 0, SEEK_END))
            var buf = [UInt8](repeating: 0, count: 64 << 10)
            while true {
                let n = read(fd, &buf, buf.count)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                if size + n > limit && size > 0 {
                    close(out)
                    rotate()
                    out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
                    size = 0
                }
                var written = 0
                while written < n {
                    let w = buf.withUnsafeBytes { write(out, $0.baseAddress! + written, n - written) }
                    if w <= 0 { break }
                    written += w
                }
                size += n
            }
            close(out)
            close(fd)
        }

        func rotate() {
            unlink("\(path).\(keep)")
            if keep > 1 {
                for k in stride(from: keep - 1, through: 1, by: -1) { rename("\(path).\(k)", "\(path).\(k + 1)") }
            }
            rename(path, "\(path).1")
        }
    }
}
