// The C target exists to carry include/swarm_plugin.h.
