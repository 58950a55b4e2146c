//! Leader election: with several replicas of `sluice serve`, every replica answers admissions
//! but only the holder of a `coordination.k8s.io/v1` Lease runs the controller.
//!
//! ```text
//! every renew_every: get Lease ─► claim (pure) ─┬─ Take / Renew ─► update (resourceVersion) ─► leader
//!                                               └─ Wait ─────────────────────────────────────► follower
//! leader ──► controller task running       follower ──► no controller task
//! renewals failing for `duration` ──► the controller is stopped before another can take over
//! shutdown ──► controller stopped, Lease released (holder cleared) so a peer takes over at once
//! ```
//!
//! Choices, as client-go's leaderelection makes them: a Lease is free when it has no holder
//! or its `renewTime + leaseDurationSeconds` has passed; every write carries the
//! resourceVersion read, so two candidates never both win; a leader that cannot renew within
//! the lease duration stops leading on its own, before the Lease can expire for the others.
//! The defaults (15 s lease, renew every 5 s) are client-go's and kube-controller-manager's.
//! A controller stopped by losing the lease is aborted, not drained: all rollout state lives
//! on the objects, so the next leader resumes it (DESIGN §7.3).

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;

use crate::controller::run::Task;
use crate::metrics::Metrics;

/// How long the Lease holds without renewal in a cluster (client-go's default).
pub const LEASE_DURATION: Duration = Duration::from_secs(15);

/// The Lease and how it is held.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    pub namespace: String,
    /// `sluice-controller`.
    pub name: String,
    /// Who this replica is: unique per process.
    pub identity: String,
    /// How long a Lease holds without renewal.
    pub duration: Duration,
    /// How often the holder renews and a candidate retries.
    pub renew_every: Duration,
}

impl LeaseSettings {
    /// The Lease `sluice-controller` in `namespace`, held 15 s and renewed every 5 s.
    pub fn new(namespace: &str, identity: String) -> Self {
        Self {
            namespace: namespace.to_string(),
            name: "sluice-controller".to_string(),
            identity,
            duration: LEASE_DURATION,
            renew_every: LEASE_DURATION / 3,
        }
    }
}

/// What a candidate may do with the Lease as it stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Nobody holds it, or the holder let it expire: take it.
    Take,
    /// We hold it: renew it.
    Renew,
    /// Someone else holds it.
    Wait,
}

/// The claim `me` has on `spec` at `now`.
pub fn claim(spec: Option<&LeaseSpec>, me: &str, now: Timestamp) -> Claim {
    let Some(spec) = spec else {
        return Claim::Take;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder.is_empty() {
        return Claim::Take;
    }
    if holder == me {
        return Claim::Renew;
    }
    let held_for = SignedDuration::from_secs(spec.lease_duration_seconds.unwrap_or(0).into());
    let expired = spec
        .renew_time
        .as_ref()
        .or(spec.acquire_time.as_ref())
        .is_none_or(|t| t.0 + held_for <= now);
    if expired { Claim::Take } else { Claim::Wait }
}

/// The Lease spec after `me` takes or renews `current` at `now`.
pub fn held_spec(
    current: Option<&LeaseSpec>,
    me: &str,
    duration: Duration,
    now: Timestamp,
) -> LeaseSpec {
    let renewing = current.and_then(|s| s.holder_identity.as_deref()) == Some(me);
    let transitions = current.and_then(|s| s.lease_transitions).unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(me.to_string()),
        lease_duration_seconds: Some(duration.as_secs().try_into().unwrap_or(i32::MAX)),
        acquire_time: if renewing {
            current.and_then(|s| s.acquire_time.clone())
        } else {
            Some(MicroTime(now))
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(if renewing || current.is_none() {
            transitions
        } else {
            transitions + 1
        }),
        ..Default::default()
    }
}

/// One round: reads the Lease and takes or renews it if it may. `Ok(true)`: this replica
/// holds it now.
async fn try_hold(api: &Api<Lease>, s: &LeaseSettings) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    let current = api.get_opt(&s.name).await?;
    let spec = current.as_ref().and_then(|l| l.spec.as_ref());
    if claim(spec, &s.identity, now) == Claim::Wait {
        return Ok(false);
    }
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some(s.name.clone()),
            namespace: Some(s.namespace.clone()),
            resource_version: current
                .as_ref()
                .and_then(|l| l.metadata.resource_version.clone()),
            ..Default::default()
        },
        spec: Some(held_spec(spec, &s.identity, s.duration, now)),
    };
    let written = match current {
        None => api.create(&PostParams::default(), &lease).await,
        Some(_) => api.replace(&s.name, &PostParams::default(), &lease).await,
    };
    match written {
        Ok(_) => Ok(true),
        // Another candidate wrote first.
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Clears the holder if it is still this replica, so a peer takes over without waiting.
async fn release(api: &Api<Lease>, s: &LeaseSettings) {
    let Ok(Some(mut lease)) = api.get_opt(&s.name).await else {
        return;
    };
    let Some(spec) = lease.spec.as_mut() else {
        return;
    };
    if spec.holder_identity.as_deref() != Some(s.identity.as_str()) {
        return;
    }
    spec.holder_identity = None;
    spec.renew_time = Some(MicroTime(Timestamp::now()));
    if let Err(e) = api.replace(&s.name, &PostParams::default(), &lease).await {
        tracing::warn!(lease = %s.name, "releasing the lease: {e}");
    }
}

/// Runs `controller` whenever this replica holds the Lease, until `stop` turns true; then
/// stops it and releases the Lease. `controller` gets a future that resolves when it must
/// stop gracefully.
pub async fn lead<F, Fut>(
    client: kube::Client,
    settings: LeaseSettings,
    metrics: Metrics,
    mut stop: watch::Receiver<bool>,
    controller: F,
) where
    F: Fn(std::pin::Pin<Box<dyn Future<Output = ()> + Send + Sync>>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let api: Api<Lease> = Api::namespaced(client, &settings.namespace);
    // While leading: the controller task, the sender that stops it, and when we last renewed.
    let mut term: Option<(Task, watch::Sender<bool>, tokio::time::Instant)> = None;
    metrics.set_leader(false);
    loop {
        if *stop.borrow() {
            break;
        }
        match try_hold(&api, &settings).await {
            Ok(true) => match term.as_mut() {
                Some((_, _, renewed)) => *renewed = tokio::time::Instant::now(),
                None => {
                    tracing::info!(lease = %settings.name, identity = %settings.identity, "leading: running the controller");
                    let (tx, mut rx) = watch::channel(false);
                    let until = Box::pin(async move {
                        let _ = rx.wait_for(|s| *s).await;
                    });
                    term = Some((
                        Task::spawn(controller(until)),
                        tx,
                        tokio::time::Instant::now(),
                    ));
                    metrics.set_leader(true);
                }
            },
            Ok(false) => {
                if term.take().is_some() {
                    tracing::warn!(lease = %settings.name, "another replica holds the lease: controller stopped");
                    metrics.set_leader(false);
                }
            }
            Err(e) => {
                let lapsed = term.as_ref().is_some_and(|(_, _, renewed)| {
                    renewed.elapsed() + settings.renew_every >= settings.duration
                });
                tracing::warn!(lease = %settings.name, "renewing the lease: {e}");
                if lapsed && term.take().is_some() {
                    tracing::warn!(lease = %settings.name, "could not renew the lease in time: controller stopped");
                    metrics.set_leader(false);
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.renew_every) => {}
            _ = stop.changed() => {}
        }
    }
    if let Some((task, tx, _)) = term.take() {
        let _ = tx.send(true);
        task.join().await;
        release(&api, &settings).await;
    }
    metrics.set_leader(false);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn held_by(who: &str, renewed: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(who.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(t(renewed))),
            ..Default::default()
        }
    }

    #[test]
    fn a_missing_or_unheld_lease_is_taken() {
        assert_eq!(claim(None, "a", t(0)), Claim::Take);
        let mut free = held_by("b", 0);
        free.holder_identity = None;
        assert_eq!(claim(Some(&free), "a", t(1)), Claim::Take);
    }

    #[test]
    fn a_peers_lease_is_respected_until_it_expires() {
        let b = held_by("b", 0);
        assert_eq!(claim(Some(&b), "a", t(14)), Claim::Wait);
        assert_eq!(claim(Some(&b), "a", t(15)), Claim::Take);
        assert_eq!(claim(Some(&b), "b", t(100)), Claim::Renew);
    }

    #[test]
    fn taking_counts_a_transition_and_renewing_keeps_the_acquire_time() {
        let b = held_by("b", 0);
        let taken = held_spec(Some(&b), "a", Duration::from_secs(15), t(20));
        assert_eq!(taken.holder_identity.as_deref(), Some("a"));
        assert_eq!(taken.lease_transitions, Some(1));
        assert_eq!(taken.acquire_time, Some(MicroTime(t(20))));
        let renewed = held_spec(Some(&taken), "a", Duration::from_secs(15), t(25));
        assert_eq!(renewed.acquire_time, Some(MicroTime(t(20))));
        assert_eq!(renewed.renew_time, Some(MicroTime(t(25))));
        assert_eq!(renewed.lease_transitions, Some(1));
        let first = held_spec(None, "a", Duration::from_secs(15), t(0));
        assert_eq!(first.lease_transitions, Some(0));
    }
}
