extension SwarmTaskSpec {
    /// The executor the task needs, written once for the manager's checks, the scheduler,
    /// the agent and `swarmctl`: its explicit runtime, else `docker` for a container spec,
    /// else `process`.
    public var executorName: String {
        if !runtimeName.isEmpty { return runtimeName }
        if case .container? = runtime { return "docker" }
        return "process"
    }
}
