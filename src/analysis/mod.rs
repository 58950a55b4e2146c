//! Analysis: the Prometheus queries behind Sluice's checks, the client that runs them, and the
//! hooks called along a rollout.

pub mod checks;
pub mod hooks;
pub mod prometheus;
pub mod queries;
