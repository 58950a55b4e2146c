//! Sandbox tests: simulators.
