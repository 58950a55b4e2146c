//! The rollout controller: the state kept on the objects ([`status`]) and the pure state
//! machine that moves it ([`machine`]).

pub mod machine;
pub mod status;
