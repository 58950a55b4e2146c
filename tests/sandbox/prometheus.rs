//! Sandbox tests: prometheus.
