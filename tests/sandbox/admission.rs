//! Sandbox tests: admission.
