/*
 * An example filter plugin written in C: "maintenance" keeps tasks off nodes labelled
 * maintenance=true (swarmctl node update --label-add maintenance=true NODE).
 * It needs nothing but swarm_plugin.h:
 *   cc -shared -fPIC -O2 -I Sources/SwarmPluginABI/include -o libswarm-maintenance.so maintenance_filter.c
 * (scripts/build-example-plugins.sh does this.)
 */
#include <stdio.h>
#include <string.h>
#include "swarm_plugin.h"

static int str_is(swarm_str s, const char *text) {
    size_t n = strlen(text);
    return s.len == n && (n == 0 || memcmp(s.data, text, n) == 0);
}

static int32_t check(void *ctx, const swarm_task_view *task, const swarm_node_view *node) {
    (void)ctx;
    (void)task;
    for (size_t i = 0; i < node->labels_count; i++) {
        if (str_is(node->labels[i].key, "maintenance") && str_is(node->labels[i].value, "true")) return 0;
    }
    return 1;
}

static const char *explain(void *ctx, uint32_t rejected) {
    (void)ctx;
    /* One buffer per thread, valid until the next call on that thread. */
    static _Thread_local char text[96];
    snprintf(text, sizeof text, "%u node%s under maintenance", rejected, rejected == 1 ? "" : "s");
    return text;
}

swarm_status swarm_plugin_init_v1(const swarm_host_v1 *host, swarm_plugin_info *info, const char **error) {
    info->abi_major = SWARM_PLUGIN_ABI_MAJOR;
    info->abi_minor = SWARM_PLUGIN_ABI_MINOR;
    info->name = "maintenance";
    info->version = "1.0.0";
    if (host->abi_major != SWARM_PLUGIN_ABI_MAJOR) {
        *error = "built for another major version of the plugin ABI";
        return SWARM_ERR_VERSION;
    }
    swarm_filter_v1 filter = {sizeof(swarm_filter_v1), NULL, check, explain};
    return host->register_filter(host->host_ctx, "maintenance", &filter);
}
