/*
 * Declarative plugins: plain C functions, no header, no registration code. The manifests
 * next to the library (roomy.plugin.json, gpu-room.plugin.json) tell the host what each
 * function is and which values to pass it; the host calls them through libffi.
 *   cc -shared -fPIC -O2 -o libswarm-declarative-examples.so roomy.c
 */
#include <stdint.h>
#include <string.h>

/* A score: the CPUs left after placing the task, plus a bonus in zone "east". */
double roomy_score(double cpu_free, double task_cpu, const char *zone) {
    double left = cpu_free - task_cpu;
    return left + (strcmp(zone, "east") == 0 ? 1000.0 : 0.0);
}

/* A filter: enough free GPU milli for the task's GPUs (count x milli). */
int32_t gpu_room(int64_t gpu_free_milli, int64_t gpu_count, int64_t gpu_milli) {
    return gpu_free_milli >= gpu_count * gpu_milli;
}
