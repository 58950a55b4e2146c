//! How soon a reconcile that failed is tried again.
//!
//! A failed reconcile usually left an effect undone after the status was written: during a
//! rollback, that is traffic still flowing to a failing canary. So the first retry comes fast
//! (250 ms), and each consecutive failure of the same Deployment doubles the wait, up to 10 s,
//! so an API server in trouble is not hammered. A `429` answer's `Retry-After` is honoured when
//! it asks for longer. A reconcile that succeeds resets the count. (A lost optimistic-
//! concurrency race is not a failure: the reconciler retries it at once with the newer object.)

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// The first retry's delay.
pub const FIRST: Duration = Duration::from_millis(250);
/// The longest delay between retries.
pub const LONGEST: Duration = Duration::from_secs(10);

/// The delay before retrying after `consecutive` failures in a row (1 for the first).
pub fn delay(consecutive: u32) -> Duration {
    let doublings = consecutive.saturating_sub(1).min(16);
    FIRST.saturating_mul(1 << doublings).min(LONGEST)
}

/// Consecutive failures per Deployment (`namespace/name`).
#[derive(Default)]
pub struct Retries {
    failures: Mutex<HashMap<String, u32>>,
}

impl Retries {
    /// Records a failure of `key` and returns how long to wait before retrying it; at least
    /// `retry_after` when the API server asked for it.
    pub fn failed(&self, key: &str, retry_after: Option<Duration>) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = failures.entry(key.to_string()).or_default();
        *n = n.saturating_add(1);
        delay(*n).max(retry_after.unwrap_or_default())
    }

    /// Forgets `key`'s failures after a reconcile of it succeeded.
    pub fn succeeded(&self, key: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_from_a_quarter_second_up_to_ten_seconds() {
        let ms: Vec<u128> = (1..=8).map(|n| delay(n).as_millis()).collect();
        assert_eq!(ms, [250, 500, 1000, 2000, 4000, 8000, 10000, 10000]);
        assert_eq!(delay(u32::MAX), LONGEST);
        assert_eq!(delay(0), FIRST);
    }

    #[test]
    fn failures_count_per_deployment_until_one_succeeds() {
        let r = Retries::default();
        assert_eq!(r.failed("shop/a", None), Duration::from_millis(250));
        assert_eq!(r.failed("shop/a", None), Duration::from_millis(500));
        assert_eq!(r.failed("shop/b", None), Duration::from_millis(250));
        r.succeeded("shop/a");
        assert_eq!(r.failed("shop/a", None), Duration::from_millis(250));
    }

    #[test]
    fn a_retry_after_longer_than_the_backoff_is_honoured() {
        let r = Retries::default();
        assert_eq!(
            r.failed("shop/a", Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(
            r.failed("shop/a", Some(Duration::from_millis(100))),
            Duration::from_millis(500)
        );
    }
}
