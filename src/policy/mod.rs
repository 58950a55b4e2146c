//! Policy: Sluice's keys ([`keys`]).

pub mod keys;
