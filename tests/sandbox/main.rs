//! End-to-end tests of the sandbox cluster. One test binary keeps link time down.

mod admission;
mod conformance;
mod kubectl;
mod prometheus;
mod simulators;
mod stack;
mod support;
