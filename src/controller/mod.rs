//! The rollout controller: the state kept on the objects ([`status`]).

pub mod objects;
pub mod status;
