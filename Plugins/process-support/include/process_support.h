#ifndef SWARM_PROCESS_SUPPORT_H
#define SWARM_PROCESS_SUPPORT_H
#include <spawn.h>
/* GNU extensions the Swift Glibc module does not expose. */
int swarm_spawn_addchdir(posix_spawn_file_actions_t *actions, const char *dir);
int swarm_pipe_cloexec(int fds[2]);
/* Opens the read end of a FIFO without waiting for a writer, then makes reads blocking. */
int swarm_open_fifo_reader(const char *path);
/* pidfd_open(2): a descriptor that becomes readable when the process exits; -1 (errno
 * set) where the kernel lacks it. */
int swarm_pidfd_open(int pid);
/* Exit watching with epoll over pidfds. create: an epoll descriptor, or -1. add: opens a
 * pidfd for pid and adds it (one-shot); returns the pidfd, or -1 (errno set). wait: blocks
 * until processes exit; writes up to max ready pidfds to fds (removed from the set, still
 * open) and returns how many, or -1 (errno set). */
int swarm_exit_watcher_create(void);
int swarm_exit_watcher_add(int epfd, int pid);
int swarm_exit_watcher_wait(int epfd, int *fds, int max);
#endif
