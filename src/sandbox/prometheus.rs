//! Prometheus harness: a real `prometheus` binary, or the built-in query endpoint.

use std::time::SystemTime;

/// Cumulative counters of one Deployment's inbound traffic, as the mesh simulator counts them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counters {
    /// Responses, all classifications.
    pub requests: u64,
    /// Responses classified `failure`.
    pub failures: u64,
    /// Cumulative latency histogram: `(le in ms, count)`, ascending, ending with `f64::INFINITY`.
    pub latency_buckets: Vec<(f64, u64)>,
}

/// Where the built-in query endpoint reads exact counters from (the mesh simulator).
pub trait CounterSource: Send + Sync {
    /// The counters of `deployment` in `namespace` as they stood at `at` (the latest sample
    /// not after `at`), or `None` if the simulator had no traffic for it by then.
    fn counters_at(&self, namespace: &str, deployment: &str, at: SystemTime) -> Option<Counters>;
}
