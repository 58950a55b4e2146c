//! The sandbox's Kubernetes API server (HTTPS, kube-apiserver semantics).

pub mod admission;
pub mod defaults;
pub mod fieldmanager;
pub mod resources;
pub mod status;
pub mod strategic;
