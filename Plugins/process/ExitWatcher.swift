#if canImport(Glibc)
import Glibc
#endif
import SwarmPluginKit
import SwarmProcessSupport
import Synchronization

/// Tells the host when a task's process exits, without polling: one thread waits in
/// `epoll` on a pidfd per process (readable once the process has exited, whether it is
/// the executor's child or a process adopted after a restart) and passes each exit on
/// through the ``TaskNotifier``. Where the kernel has no pidfd, a task is watched by a
/// thread of its own that checks every 100 ms.
final class ExitWatcher: Sendable {
    let notifier: TaskNotifier
    private let epoll: Int32
    /// Task IDs by pidfd.
    private let watched = Mutex<[Int32: String]>([:])

    init(notifier: TaskNotifier) {
        self.notifier = notifier
        epoll = swarm_exit_watcher_create()
        guard epoll >= 0 else { return }
        Self.detach { [self] in self.loop() }
    }

    /// Tells the host when `pid` exits. `alive` says whether it still runs (for the
    /// fallback without pidfd).
    func watch(taskID: String, pid: pid_t, alive: @escaping @Sendable () -> Bool) {
        // The table entry goes in before the process can be seen to exit.
        let fd = epoll >= 0 ? watched.withLock { w -> Int32 in
            let fd = swarm_exit_watcher_add(epoll, pid)
            if fd >= 0 { w[fd] = taskID }
            return fd
        } : -1
        if fd < 0 { fallback(taskID: taskID, alive: alive) }
    }

    private func loop() {
        var fds = [Int32](repeating: -1, count: 64)
        while true {
            let n = swarm_exit_watcher_wait(epoll, &fds, Int32(fds.count))
            if n < 0 { if errno == EINTR { continue }; return }
            for fd in fds.prefix(Int(n)) {
                let id = watched.withLock { $0.removeValue(forKey: fd) }
                close(fd)
                if let id { notifier.changed(id) }
            }
        }
    }

    private func fallback(taskID: String, alive: @escaping @Sendable () -> Bool) {
        let notifier = notifier
        Self.detach {
            while alive() { usleep(100_000) }
            notifier.changed(taskID)
        }
    }

    /// Runs `body` on a detached thread of its own.
    static func detach(_ body: @escaping @Sendable () -> Void) {
        final class Box { let body: @Sendable () -> Void; init(_ b: @escaping @Sendable () -> Void) { body = b } }
        var tid = pthread_t()
        let arg = Unmanaged.passRetained(Box(body)).toOpaque()
        if pthread_create(&tid, nil, { arg in
            Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue().body()
            return nil
        }, arg) == 0 {
            pthread_detach(tid)
        } else {
            Unmanaged<Box>.fromOpaque(arg).release()
        }
    }
}
