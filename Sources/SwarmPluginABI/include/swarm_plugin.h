/*
 * swarm_plugin.h — the only interface shared by swift-swarm and its plugins.
 *
 * A plugin is a shared library that exports one symbol, SWARM_PLUGIN_ENTRY
 * ("swarm_plugin_init_v1"), of type swarm_plugin_init_v1_fn. The host calls it once, with
 * a host table; the plugin fills in its swarm_plugin_info and registers filters,
 * strategies and executors by name through the table. Registrations take effect only if
 * the entry point returns SWARM_OK and the plugin's ABI major version equals the host's.
 *
 * Rules
 *  - Only the C types below cross the boundary. Strings are (pointer, length) views and
 *    are not NUL-terminated unless stated. Views passed to a callback are valid only for
 *    the duration of that call.
 *  - Versioning: every struct begins with struct_size. Structs and tables only grow, by
 *    appending fields (minor version); a reader checks struct_size before touching a
 *    field added later. The host copies each table a plugin registers as far as the
 *    plugin's struct_size reaches, so a table built against an older 1.x header loads,
 *    with the fields it lacks read as NULL; the smallest table accepted is 1.0's, up to the
 *    last function that is not optional (score, check, remove). A different major
 *    version is refused.
 *  - Strings a plugin hands the host (the entry point's *error, explain's result, an
 *    executor call's *error) follow one rule: they are the plugin's. The host copies the
 *    text before it makes any other call into the plugin on that thread, and never frees
 *    it itself. Where the table has a free function (free_error), the host hands the
 *    string back through it once copied; where it has none, the string must stay valid
 *    until the plugin's next call on the same thread (a static or thread-local buffer).
 *    Nothing unwinds across the boundary.
 *  - Threads: filter and strategy callbacks may be called from several threads at once,
 *    but never concurrently with the plugin's init. Executor callbacks for one task are
 *    never called concurrently, except status, which may be called at any time (for
 *    example while a shutdown waits out its grace period); callbacks for different tasks
 *    may be.
 *  - ABI 1.4: the host may call the entry point more than once (it makes a private
 *    strategy instance for simulations such as `service create --dry-run`). A plugin that
 *    declares abi_minor 4 or more registers new, independent instances (new ctx) at each
 *    call, so that calls into one never change what another returns. The host never
 *    makes a second instance of a strategy with prepare from an older plugin.
 *  - The host table and its host_ctx stay valid for the life of the process: log may be
 *    called at any time, from any thread. Its lines go to the host's log with the
 *    plugin's name.
 *  - Plugins are never unloaded.
 */
#ifndef SWARM_PLUGIN_H
#define SWARM_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SWARM_PLUGIN_ABI_MAJOR 1
#define SWARM_PLUGIN_ABI_MINOR 5
#define SWARM_PLUGIN_ENTRY "swarm_plugin_init_v1"

typedef int32_t swarm_status;
#define SWARM_OK 0
#define SWARM_ERR_FAILED 1
#define SWARM_ERR_INVALID 2
#define SWARM_ERR_DUPLICATE 3
#define SWARM_ERR_VERSION 4
/* ABI 1.2: the plugin has no answer for this call; the host does what it does without it. */
#define SWARM_DECLINED 5

/* A string view: `len` bytes of UTF-8 at `data` (not NUL-terminated). */
typedef struct swarm_str {
    const char *data;
    size_t len;
} swarm_str;

typedef struct swarm_label {
    swarm_str key;
    swarm_str value;
} swarm_label;

/* A generic resource: a discrete count (`named` empty) or one named unit. */
typedef struct swarm_generic_resource {
    swarm_str kind;
    int64_t value;
    swarm_str named;
} swarm_generic_resource;

/* One GPU of a node, with what is still free of it (1000 milli = the whole GPU). */
typedef struct swarm_gpu_view {
    size_t struct_size;
    swarm_str uuid;
    uint32_t index;
    swarm_str model;
    uint64_t memory_mib;
    swarm_str topology_group;
    uint32_t free_milli;
} swarm_gpu_view;

#define SWARM_NODE_ROLE_WORKER 0
#define SWARM_NODE_ROLE_MANAGER 1

/* What a placement plugin sees of a node. The host keeps these up to date. */
typedef struct swarm_node_view {
    size_t struct_size;
    swarm_str id;
    swarm_str hostname;
    swarm_str os;
    swarm_str arch;
    int32_t role;
    int64_t nano_cpus_total;
    int64_t nano_cpus_free;
    int64_t memory_bytes_total;
    int64_t memory_bytes_free;
    const swarm_label *labels;
    size_t labels_count;
    const swarm_label *engine_labels;
    size_t engine_labels_count;
    const swarm_generic_resource *generic_free;
    size_t generic_free_count;
    const swarm_gpu_view *gpus;
    size_t gpus_count;
    /* Tasks on the node, in total and of the service being placed. */
    uint32_t tasks_total;
    uint32_t tasks_of_service;
    /* Recent failures of the service being placed on this node. */
    uint32_t recent_failures_of_service;
    /* ABI 1.1: the kinds of GPU tasks already on the node, as bits: SWARM_GPU_CLASS_SHARED
     * for a task with a fraction of one GPU, and 1 << k for a task with k whole GPUs
     * (k = 1..31). */
    uint32_t gpu_task_classes;
    /* ABI 1.3: the host-mode ports already published on the node, in increasing order.
     * Valid for the duration of the call. */
    const uint32_t *used_host_ports;
    size_t used_host_ports_count;
} swarm_node_view;

#define SWARM_GPU_CLASS_SHARED 1u

/* What a placement plugin sees of the task being placed. */
typedef struct swarm_task_view {
    size_t struct_size;
    swarm_str id;
    swarm_str service_id;
    swarm_str service_name;
    uint64_t slot;
    int64_t reserved_nano_cpus;
    int64_t reserved_memory_bytes;
    const swarm_generic_resource *generic;
    size_t generic_count;
    uint32_t gpu_count;
    uint32_t gpu_milli;
    uint64_t gpu_min_memory_mib;
    const swarm_str *gpu_models;
    size_t gpu_models_count;
    swarm_str runtime;
    /* ABI 1.3: the most tasks of the service one node may run (0: no limit; compare with
     * the node's tasks_of_service), and the host-mode ports each task publishes (a node
     * whose used_host_ports holds any of them cannot take the task). */
    uint64_t max_replicas_per_node;
    const uint32_t *host_ports;
    size_t host_ports_count;
} swarm_task_view;

/* A filter: which nodes a task may go to. */
typedef struct swarm_filter_v1 {
    size_t struct_size;
    void *ctx;
    /* 1 if `task` may run on `node`, 0 if not. */
    int32_t (*check)(void *ctx, const swarm_task_view *task, const swarm_node_view *node);
    /* Optional (NULL, or left out of a shorter table). A NUL-terminated explanation for
     * `rejected` nodes, owned by the plugin (the strings rule above): valid until the
     * plugin's next call on the same thread. May return NULL. */
    const char *(*explain)(void *ctx, uint32_t rejected);
} swarm_filter_v1;

/* ABI 1.1: one class of task in the cluster's expected workload, with its weight (the
 * weights of a workload add up to 1). Fragmentation-aware strategies measure how much free
 * capacity each class could still use. */
typedef struct swarm_workload_class {
    size_t struct_size;
    int64_t nano_cpus;
    int64_t memory_bytes;
    uint32_t gpu_count;
    /* Share of each GPU in milli-units (1000 = whole GPUs). */
    uint32_t gpu_milli;
    /* Allowed GPU models; none means any. */
    const swarm_str *gpu_models;
    size_t gpu_models_count;
    double weight;
} swarm_workload_class;

/* ABI 1.1: what a strategy sees of the whole cluster once per scheduling pass. */
typedef struct swarm_cluster_view {
    size_t struct_size;
    const swarm_node_view *const *nodes;
    size_t nodes_count;
    const swarm_workload_class *workload;
    size_t workload_count;
    /* A seed for strategies that draw random numbers; fixed for a run. */
    uint64_t seed;
    /* Counts the passes of a run from 0: a strategy that keeps state across passes
     * (a random generator, caches) starts afresh when it sees 0. */
    uint64_t tick;
} swarm_cluster_view;

/* A strategy: ranks the nodes that passed the filters. */
typedef struct swarm_strategy_v1 {
    size_t struct_size;
    void *ctx;
    /* Higher is better. NaN or an infinite value means "do not use this node". */
    double (*score)(void *ctx, const swarm_task_view *task, const swarm_node_view *node);
    /* ABI 1.1, optional (NULL): called once per scheduling pass, before its scores, never
     * concurrently with score or assign_devices. */
    void (*prepare)(void *ctx, const swarm_cluster_view *cluster);
    /* ABI 1.1, optional (NULL): chooses the GPUs `task` gets on `node` (the chosen node).
     * Writes task->gpu_count GPU indices (positions in node->gpus) to `out`, which has
     * room for `capacity`, and returns how many it wrote; -1 leaves the choice to the host
     * (best fit for a fraction, lowest-indexed free GPUs for whole ones). The host checks
     * the answer and falls back to its own choice if it is not a valid one. */
    int32_t (*assign_devices)(void *ctx, const swarm_task_view *task, const swarm_node_view *node,
                              uint32_t *out, size_t capacity);
    /* ABI 1.2, optional (NULL): places a whole group at once (the `task_count` tasks of one
     * service at one spec version, which all look like `task`), for decisions that concern
     * the group, such as all-or-nothing (gang) placement. `feasible` holds the nodes that
     * passed the filters, in ID order. Writes to out[i], for each task, a position in
     * `feasible`, or -1 to leave that task pending. Returns SWARM_OK, or SWARM_DECLINED to
     * let the host place the group task by task with score. The host applies the answer
     * as a whole: if any choice is out of range, or names a node with no room left once
     * the group's earlier tasks are on it, no task of the group is placed, and each stays
     * pending with the reason. Placement preferences are the strategy's to honour here
     * (the node views carry the labels). Never called concurrently with prepare. */
    swarm_status (*place_group)(void *ctx, const swarm_task_view *task, size_t task_count,
                                const swarm_node_view *const *feasible, size_t feasible_count, int32_t *out);
} swarm_strategy_v1;

/* The size of a 1.0 strategy table, the smallest the host accepts. */
#define SWARM_STRATEGY_V1_0_SIZE (offsetof(swarm_strategy_v1, score) + sizeof(void *))

/* What an executor receives to run a task: a C view plus the task's protobuf bytes. */
typedef struct swarm_exec_task {
    size_t struct_size;
    swarm_str task_id;
    swarm_str service_id;
    /* Directory for the task's logs and scratch files, created by the host. */
    swarm_str work_dir;
    /* swarm.v1.Task, serialized. */
    const uint8_t *task_proto;
    size_t task_proto_len;
} swarm_exec_task;

typedef struct swarm_exec_status {
    size_t struct_size;
    /* 1 once the task's process (or container) has exited. */
    int32_t exited;
    int32_t exit_code;
    int32_t pid;
    /* ABI 1.5 (check struct_size): the task's health as the executor sees it (a container
     * engine's own health check), one of SWARM_HEALTH_*; NONE when the executor runs no
     * check of its own (the host then runs the spec's check itself, for process tasks). */
    int32_t health;
    /* ABI 1.5: a short note, NUL-terminated: why the task is unhealthy (the last check's
     * output), or something about how it ended ("OOM-killed"). Empty when there is none. */
    char message[256];
} swarm_exec_status;

#define SWARM_HEALTH_NONE 0
#define SWARM_HEALTH_STARTING 1
#define SWARM_HEALTH_HEALTHY 2
#define SWARM_HEALTH_UNHEALTHY 3

/* swarm_executor_v1.flags (ABI 1.5): the executor calls the host's task_changed whenever
 * a started task's status changes (it exits, its health changes, it disappears), so the
 * host follows it by those calls instead of polling status. */
#define SWARM_EXEC_NOTIFIES 1u

/* An executor. Each call returns SWARM_OK, or an error with *error set to a NUL-terminated
 * message, owned by the plugin (the strings rule above): the host copies it, then hands
 * it back through free_error. */
typedef struct swarm_executor_v1 {
    size_t struct_size;
    void *ctx;
    swarm_status (*prepare)(void *ctx, const swarm_exec_task *task, char **error);
    swarm_status (*start)(void *ctx, const swarm_exec_task *task, char **error);
    /* Reports the current state without blocking. */
    swarm_status (*status)(void *ctx, swarm_str task_id, swarm_exec_status *out, char **error);
    /* Asks the task to stop, then forces it after grace_ns nanoseconds. */
    swarm_status (*shutdown)(void *ctx, swarm_str task_id, int64_t grace_ns, char **error);
    swarm_status (*terminate)(void *ctx, swarm_str task_id, char **error);
    swarm_status (*remove)(void *ctx, swarm_str task_id, char **error);
    /* Optional (NULL, or left out of a shorter table): releases an error string once the
     * host has copied it. Without it, error strings must stay valid until the plugin's
     * next call on the same thread. */
    void (*free_error)(void *ctx, char *error);
    /* ABI 1.5, optional (NULL means always available): SWARM_OK when the executor can run
     * tasks now; otherwise an error whose *error says why not (for docker: the engine does
     * not answer). The host asks at start and then every few seconds, on a thread of its
     * own (so it may block for a few seconds); the node reports the answer, and the
     * scheduler places the executor's tasks only on nodes where it is SWARM_OK. */
    swarm_status (*available)(void *ctx, char **error);
    /* ABI 1.5: SWARM_EXEC_* bits. */
    uint64_t flags;
} swarm_executor_v1;

/* What a plugin says about itself. */
typedef struct swarm_plugin_info {
    size_t struct_size;
    /* Set by the plugin to the SWARM_PLUGIN_ABI_* it was built against. */
    uint32_t abi_major;
    uint32_t abi_minor;
    /* NUL-terminated, static. */
    const char *name;
    const char *version;
} swarm_plugin_info;

#define SWARM_LOG_DEBUG 0
#define SWARM_LOG_INFO 1
#define SWARM_LOG_WARNING 2
#define SWARM_LOG_ERROR 3

/* The table the host passes to the entry point. Names are NUL-terminated; the host copies
 * them and the vtables. */
typedef struct swarm_host_v1 {
    size_t struct_size;
    uint32_t abi_major;
    uint32_t abi_minor;
    void *host_ctx;
    swarm_status (*register_filter)(void *host_ctx, const char *name, const swarm_filter_v1 *filter);
    swarm_status (*register_strategy)(void *host_ctx, const char *name, const swarm_strategy_v1 *strategy);
    swarm_status (*register_executor)(void *host_ctx, const char *name, const swarm_executor_v1 *executor);
    void (*log)(void *host_ctx, int32_t level, const char *message);
    /* ABI 1.5 (check struct_size): an executor with SWARM_EXEC_NOTIFIES calls this when the
     * status of `task_id` changed; the host then calls status for it, from another thread.
     * It may be called at any time, from any thread, including inside an executor call,
     * and returns at once. */
    void (*task_changed)(void *host_ctx, swarm_str task_id);
} swarm_host_v1;

/* The entry point. On failure the plugin may set *error to a NUL-terminated message, owned
 * by the plugin (the strings rule above: static, or valid until its next call). */
typedef swarm_status (*swarm_plugin_init_v1_fn)(const swarm_host_v1 *host, swarm_plugin_info *info, const char **error);

#ifdef __cplusplus
}
#endif

#endif /* SWARM_PLUGIN_H */
