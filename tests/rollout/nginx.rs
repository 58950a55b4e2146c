//! The canary scenarios with `sluice.dev/router: nginx`: the load enters through the app's
//! Ingress, Sluice splits it with its canary Ingress `podinfo-canary`, and the observer holds
//! the same invariants over the traffic the pods answered.
//!
//! On a real cluster (`SLUICE_E2E_KUBECONFIG`) the harness's load generator still targets the
//! apex Service, not an ingress-nginx controller, so the canary Ingress would split nothing
//! there: these two scenarios are meant for the sandbox until the cluster harness sends its
//! load through the ingress controller.

use crate::harness::RouterKind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_is_promoted_through_a_canary_ingress() {
    super::a_healthy_canary_is_promoted_with(RouterKind::Nginx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_canary_is_rolled_back_through_a_canary_ingress_and_refused_until_retry() {
    super::a_failing_canary_is_rolled_back_and_refused_until_retry_with(RouterKind::Nginx).await;
}
