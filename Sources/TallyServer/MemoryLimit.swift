// MemoryLimit: hands the maxmemory options from the configuration to the engine (start and CONFIG SET).
import TallyCommands
import TallyKeyspace

extension ServerCore {
    /// Applies `maxmemory`, `maxmemory-policy`, `maxmemory-samples`, `lfu-log-factor` and
    /// `lfu-decay-time` to `engine`.
    func applyMemoryLimit(from configuration: ServerConfiguration, to engine: CommandEngine) {
        let policy = EvictionPolicy(rawValue: configuration.string("maxmemory-policy")) ?? .noEviction
        let bytes = configuration.integer("maxmemory")
        let samples = Int(clamping: configuration.integer("maxmemory-samples"))
        engine.setMemoryLimit(
            bytes: Int(clamping: bytes), policy: policy, samples: samples,
            lfuLogFactor: Int(clamping: configuration.integer("lfu-log-factor")),
            lfuDecayMinutes: Int(clamping: configuration.integer("lfu-decay-time")))
    }
}
