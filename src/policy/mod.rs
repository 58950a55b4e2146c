//! Policy: Sluice's keys ([`keys`]).

pub mod freeze;
pub mod keys;
pub mod optin;
pub mod settings;
pub mod values;
