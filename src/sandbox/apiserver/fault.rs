//! Faults the tests inject into the sandbox API server.
//!
//! A **write fence** freezes one client right after a chosen write: once `who` has made a
//! write whose stored object satisfies the fence's condition, every later write by `who` is
//! answered `503 ServiceUnavailable` until the fence is lifted. Reads still work. That is the
//! state a process leaves behind when it dies right after that write, and it lets a test kill
//! the controller in a phase that lasts only one reconcile (`Promoting`), which no poller
//! could catch:
//!
//! ```text
//! fence(Sluice, phase == Promoting) ─► controller writes Promoting ─► tripped
//!   ─► its next writes get 503 ─► test kills it ─► lift ─► a new controller resumes
//! ```
//!
//! A **fault plan** makes the server unreliable for one client, as an overloaded or
//! restarting control plane is: a share of its requests (watches excepted) answered 500, 429
//! (with `Retry-After`) or 409 (writes only) instead of being served, latency added to every
//! request, and watch streams cut after a while (the client must re-list or resume).
//!
//! kube-apiserver has no such switches; only tests use them.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::http::Method;
use serde_json::Value;

use super::Identity;
use super::status::ApiError;

/// A condition on the object a write stored.
pub type Condition = Box<dyn Fn(&Value) -> bool + Send + Sync>;

struct Fence {
    who: Identity,
    trips_on: Condition,
    tripped: AtomicBool,
}

/// How unreliable the server is for one client.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultPlan {
    pub who: Identity,
    /// Share (0 to 1) of the client's requests, watches excepted, answered with an error
    /// instead of being served: 500, 429 or, for writes, 409, in equal parts.
    pub error_share: f64,
    /// Added before every request of the client is served.
    pub latency: Duration,
    /// Watch streams of the client end after this long, whatever timeout it asked for.
    pub watch_lifetime: Option<Duration>,
}

/// The armed fence and fault plan, if any, and how many errors the plan injected.
#[derive(Default)]
pub struct Faults {
    fence: Mutex<Option<Fence>>,
    plan: Mutex<Option<FaultPlan>>,
    injected: AtomicU64,
}

fn is_write(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

impl Faults {
    /// Arms a fence for `who`, replacing any other.
    pub fn fence(&self, who: Identity, trips_on: Condition) {
        *self.lock() = Some(Fence {
            who,
            trips_on,
            tripped: AtomicBool::new(false),
        });
    }

    /// Removes the fence; writes flow again.
    pub fn lift(&self) {
        *self.lock() = None;
    }

    /// Whether the armed fence has tripped.
    pub fn tripped(&self) -> bool {
        self.lock()
            .as_ref()
            .is_some_and(|f| f.tripped.load(Ordering::Acquire))
    }

    /// Whether a fence is armed for `who` and has not tripped yet: the only case in which a
    /// write's response must be inspected (see [`after_write`](Self::after_write)).
    pub fn watching(&self, who: Identity, method: &Method) -> bool {
        is_write(method)
            && self
                .lock()
                .as_ref()
                .is_some_and(|f| f.who == who && !f.tripped.load(Ordering::Acquire))
    }

    /// The refusal for a write by `who` behind a tripped fence.
    pub fn before_write(&self, who: Identity, method: &Method) -> Option<ApiError> {
        let guard = self.lock();
        let fence = guard.as_ref()?;
        (is_write(method) && fence.who == who && fence.tripped.load(Ordering::Acquire)).then(|| {
            ApiError::new(
                503,
                "ServiceUnavailable",
                format!(
                    "the sandbox's write fence for {} has tripped: writes are refused until the test lifts it",
                    who.username()
                ),
            )
        })
    }

    /// Trips the fence if `stored`, the object a successful write by its client returned,
    /// satisfies its condition.
    pub fn after_write(&self, stored: &Value) {
        if let Some(f) = self.lock().as_ref()
            && (f.trips_on)(stored)
        {
            f.tripped.store(true, Ordering::Release);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Fence>> {
        self.fence.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the server unreliable for `plan.who`; `None` makes it reliable again.
    pub fn set_plan(&self, plan: Option<FaultPlan>) {
        *self.plan.lock().unwrap_or_else(|e| e.into_inner()) = plan;
    }

    fn plan_for(&self, who: Identity) -> Option<FaultPlan> {
        self.plan
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .filter(|p| p.who == who)
    }

    /// Errors injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    /// The delay to add to a request of `who`, and the error to answer instead of serving it,
    /// if the plan draws one (`draw` is a uniform number in [0, 1)).
    pub fn draw(
        &self,
        who: Identity,
        method: &Method,
        watch: bool,
        draw: f64,
    ) -> (Duration, Option<ApiError>) {
        let Some(plan) = self.plan_for(who) else {
            return (Duration::ZERO, None);
        };
        if watch || draw >= plan.error_share {
            return (plan.latency, None);
        }
        self.injected.fetch_add(1, Ordering::Relaxed);
        // Which error: the draw, rescaled to [0, 1) within the faulted share.
        let which = draw / plan.error_share;
        let error = if which < 1.0 / 3.0 {
            ApiError::internal("the sandbox's fault plan failed this request; retry it")
        } else if which < 2.0 / 3.0 || !is_write(method) {
            ApiError::new(
                429,
                "TooManyRequests",
                "the server has received too many requests and has asked us to try again later",
            )
            .with_details(serde_json::json!({"retryAfterSeconds": 1}))
        } else {
            ApiError::new(
                409,
                "Conflict",
                "Operation cannot be fulfilled: the object has been modified; please apply your changes to the latest version and try again",
            )
        };
        (plan.latency, Some(error))
    }

    /// How long a watch of `who` that asked for `asked` may run.
    pub fn watch_lifetime(&self, who: Identity, asked: Duration) -> Duration {
        self.plan_for(who)
            .and_then(|p| p.watch_lifetime)
            .map_or(asked, |cut| cut.min(asked))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn named(name: &'static str) -> Condition {
        Box::new(move |o: &Value| o["metadata"]["name"] == name)
    }

    #[test]
    fn a_fence_refuses_nothing_until_it_trips_and_then_only_its_clients_writes() {
        let faults = Faults::default();
        faults.fence(Identity::Sluice, named("app"));
        assert!(
            faults
                .before_write(Identity::Sluice, &Method::PATCH)
                .is_none()
        );
        assert!(faults.watching(Identity::Sluice, &Method::PATCH));
        assert!(!faults.watching(Identity::Admin, &Method::PATCH));
        assert!(!faults.watching(Identity::Sluice, &Method::GET));

        faults.after_write(&json!({"metadata": {"name": "other"}}));
        assert!(!faults.tripped());
        faults.after_write(&json!({"metadata": {"name": "app"}}));
        assert!(faults.tripped());

        let refused = faults
            .before_write(Identity::Sluice, &Method::PUT)
            .expect("refused");
        assert_eq!(refused.code, 503);
        assert!(
            faults
                .before_write(Identity::Sluice, &Method::GET)
                .is_none()
        );
        assert!(faults.before_write(Identity::Admin, &Method::PUT).is_none());
        assert!(!faults.watching(Identity::Sluice, &Method::PATCH));
    }

    fn plan(share: f64) -> FaultPlan {
        FaultPlan {
            who: Identity::Sluice,
            error_share: share,
            latency: Duration::from_millis(5),
            watch_lifetime: Some(Duration::from_secs(2)),
        }
    }

    #[test]
    fn a_fault_plan_fails_its_share_of_one_clients_requests_with_each_error_in_turn() {
        let faults = Faults::default();
        faults.set_plan(Some(plan(0.3)));
        let code = |method: &Method, draw: f64| {
            faults
                .draw(Identity::Sluice, method, false, draw)
                .1
                .map(|e| e.code)
        };
        assert_eq!(code(&Method::PATCH, 0.05), Some(500));
        assert_eq!(code(&Method::PATCH, 0.15), Some(429));
        assert_eq!(code(&Method::PATCH, 0.25), Some(409));
        assert_eq!(code(&Method::GET, 0.25), Some(429), "reads never get a 409");
        assert_eq!(code(&Method::PATCH, 0.3), None);
        assert_eq!(faults.injected(), 4);
        let (latency, error) = faults.draw(Identity::Sluice, &Method::GET, true, 0.0);
        assert_eq!(
            (latency, error.is_none()),
            (Duration::from_millis(5), true),
            "watches are served"
        );
        assert_eq!(
            faults.draw(Identity::Admin, &Method::GET, false, 0.0).0,
            Duration::ZERO,
            "other clients are untouched"
        );
    }

    #[test]
    fn a_fault_plan_shortens_only_its_clients_watches() {
        let faults = Faults::default();
        let hour = Duration::from_secs(3600);
        assert_eq!(faults.watch_lifetime(Identity::Sluice, hour), hour);
        faults.set_plan(Some(plan(0.1)));
        assert_eq!(
            faults.watch_lifetime(Identity::Sluice, hour),
            Duration::from_secs(2)
        );
        assert_eq!(faults.watch_lifetime(Identity::Admin, hour), hour);
        faults.set_plan(None);
        assert_eq!(faults.watch_lifetime(Identity::Sluice, hour), hour);
    }

    #[test]
    fn lifting_the_fence_lets_writes_through_again() {
        let faults = Faults::default();
        faults.fence(Identity::Sluice, named("app"));
        faults.after_write(&json!({"metadata": {"name": "app"}}));
        faults.lift();
        assert!(!faults.tripped());
        assert!(
            faults
                .before_write(Identity::Sluice, &Method::POST)
                .is_none()
        );
    }
}
