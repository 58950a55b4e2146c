//! The rollout controller: the state kept on the objects ([`status`]), the pure state machine
//! that moves it ([`machine`]), the objects it generates ([`objects`]), and the I/O around
//! them: [`reconcile`] (observe → decide → act) and [`run`] (caches and the kube-runtime
//! `Controller`), and the alerts a transition sends ([`notify`]).

pub mod machine;
pub mod notify;
pub mod objects;
pub mod reconcile;
pub mod retry;
pub mod run;
pub mod seen;
pub mod status;
