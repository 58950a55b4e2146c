//! Analysis: the Prometheus queries behind Sluice's checks.

pub mod queries;
