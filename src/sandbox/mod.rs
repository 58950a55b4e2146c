//! The sandbox: an in-process cluster for `sluice sandbox` and the end-to-end tests.

pub mod apiserver;
pub mod mesh;
pub mod prometheus;
pub mod workload;
