//! Sandbox tests: conformance.
