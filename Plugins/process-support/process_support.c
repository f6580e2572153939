#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <unistd.h>
#include "process_support.h"

int swarm_spawn_addchdir(posix_spawn_file_actions_t *actions, const char *dir) {
    return posix_spawn_file_actions_addchdir_np(actions, dir);
}

int swarm_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

int swarm_open_fifo_reader(const char *path) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return -1;
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) { close(fd); return -1; }
    return fd;
}

#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

int swarm_pidfd_open(int pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

int swarm_exit_watcher_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int swarm_exit_watcher_add(int epfd, int pid) {
    int fd = swarm_pidfd_open(pid);
    if (fd < 0) return -1;
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    struct epoll_event ev = {0};
    ev.events = EPOLLIN | EPOLLONESHOT;
    ev.data.fd = fd;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) { close(fd); return -1; }
    return fd;
}

int swarm_exit_watcher_wait(int epfd, int *fds, int max) {
    struct epoll_event events[64];
    if (max > 64) max = 64;
    int n = epoll_wait(epfd, events, max, -1);
    for (int i = 0; i < n; i++) {
        fds[i] = events[i].data.fd;
        epoll_ctl(epfd, EPOLL_CTL_DEL, fds[i], NULL);
    }
    return n;
}
