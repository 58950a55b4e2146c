//! Sluice: progressive delivery for plain Kubernetes Deployments.
//!
//! ```text
//! kubectl apply ──► kube-apiserver ──► webhook (TLS)  ──► controller ──► routing + analysis
//! ```
//!
//! The crate is laid out by capability; `main.rs` only parses the command line.
//! - [`sandbox`]: an in-process cluster (API server, admission call-outs, workload and mesh
//!   simulators, Prometheus harness) that `sluice sandbox` and the end-to-end tests run on.
//! - [`analysis`]: the Prometheus queries behind the built-in checks.
//! - [`policy`]: the vocabulary of labels and annotations, and settings.
//! - [`controller`]: the rollout state on the objects.
//! - [`webhook`], [`routing`]: the admission webhook and the traffic routers.
//! - [`serve`]: the composition root of `sluice serve` (webhook + controller + caches).
//! - [`cli`]: the `sluice` command line.
//! - [`metrics`]: the Prometheus metrics served on the admin port.
//! - [`leader`]: the Lease that picks the one replica running the controller.
//! - [`rbac`]: every Kubernetes API call Sluice makes, which `deploy/` grants.
//! - `fuzz`: the bodies of the fuzz targets in `fuzz/`, shared with the seed-corpus test.
#![forbid(unsafe_code)]

pub mod analysis;
pub mod cli;
pub mod controller;
#[doc(hidden)]
pub mod fuzz;
pub mod leader;
pub mod metrics;
pub mod policy;
pub mod rbac;
pub mod routing;
pub mod sandbox;
pub mod serve;
pub mod telemetry;
pub mod tls;
pub mod webhook;
