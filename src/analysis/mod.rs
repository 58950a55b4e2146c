//! Analysis: the Prometheus queries behind Sluice's checks, and the client that runs them.

pub mod checks;
pub mod prometheus;
pub mod queries;
