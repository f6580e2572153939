#ifndef SWARM_PROCESS_SUPPORT_H
#define SWARM_PROCESS_SUPPORT_H
#include <spawn.h>
/* GNU extensions the Swift Glibc module does not expose. */
int swarm_spawn_addchdir(posix_spawn_file_actions_t *actions, const char *dir);
int swarm_pipe_cloexec(int fds[2]);
/* Opens the read end of a FIFO without waiting for a writer, then makes reads blocking. */
int swarm_open_fifo_reader(const char *path);
#endif
