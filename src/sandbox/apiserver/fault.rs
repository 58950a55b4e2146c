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
//! kube-apiserver has no such switch; only tests use it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

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

/// The armed fence, if any.
#[derive(Default)]
pub struct Faults {
    fence: Mutex<Option<Fence>>,
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
