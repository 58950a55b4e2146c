//! The rollout controller: the state kept on the objects ([`status`]), the pure state machine
//! that moves it ([`machine`]), and the objects it generates ([`objects`]).

pub mod machine;
pub mod objects;
pub mod status;
