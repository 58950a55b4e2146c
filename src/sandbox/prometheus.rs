//! Prometheus harness: a real `prometheus` binary, or the built-in query endpoint.
