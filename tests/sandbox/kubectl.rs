//! Sandbox tests: kubectl.
