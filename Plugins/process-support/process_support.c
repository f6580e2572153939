#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <unistd.h>
#include "process_support.h"

int swarm_spawn_addchdir(posix_spawn_file_actions_t *actions, const char *dir) {
    return posix_spawn_file_actions_addchdir_np(actions, dir);
}

int swarm_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }
