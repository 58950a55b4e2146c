//! Which Deployments the workload simulator may sync now, given the status writes in flight:
//! at most one write per Deployment (its next step must start from the status that write
//! returns, as the sequential loop did), and at most `limit` in all (so a fleet of thousands
//! does not open thousands of requests against the API server at once).
//!
//! ```text
//! dirty key ──► ready? ── yes ──► sync (pure step) ──► write? ── yes ──► started(key) ─► PATCH …
//!                  └─ no ──► wait(key)                                                   │
//! next_ready() ◄── finished(key) ◄──────────────────────────────────────────────────────┘
//! ```
//!
//! A key waiting is synced once, however many times it was marked, in the order it first
//! waited. Pure bookkeeping: the simulator's loop does the I/O.

use std::collections::{BTreeSet, VecDeque};

/// The status writes in flight and the keys waiting for them.
#[derive(Debug)]
pub struct Writes<K> {
    limit: usize,
    in_flight: BTreeSet<K>,
    waiting: VecDeque<K>,
    queued: BTreeSet<K>,
}

impl<K: Ord + Clone> Writes<K> {
    /// Allows `limit` writes in flight (at least one).
    pub fn new(limit: usize) -> Self {
        Writes {
            limit: limit.max(1),
            in_flight: BTreeSet::new(),
            waiting: VecDeque::new(),
            queued: BTreeSet::new(),
        }
    }

    /// Whether `key` may be synced now: no write of its own in flight and a free slot.
    pub fn ready(&self, key: &K) -> bool {
        !self.in_flight.contains(key) && self.in_flight.len() < self.limit
    }

    /// Marks `key` to be synced once [`ready`](Self::ready).
    pub fn wait(&mut self, key: K) {
        if self.queued.insert(key.clone()) {
            self.waiting.push_back(key);
        }
    }

    /// A write of `key` began.
    pub fn started(&mut self, key: K) {
        self.in_flight.insert(key);
    }

    /// The write of `key` ended (written or failed).
    pub fn finished(&mut self, key: &K) {
        self.in_flight.remove(key);
    }

    /// The first waiting key that is ready now, taken off the waiting list.
    pub fn next_ready(&mut self) -> Option<K> {
        if self.in_flight.len() >= self.limit {
            return None;
        }
        let at = self.waiting.iter().position(|k| self.ready(k))?;
        let key = self.waiting.remove(at)?;
        self.queued.remove(&key);
        Some(key)
    }

    /// Writes in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployment_with_a_write_in_flight_waits_for_it_and_is_synced_once() {
        let mut w = Writes::new(4);
        assert!(w.ready(&"a"));
        w.started("a");
        assert!(!w.ready(&"a"));
        assert!(w.ready(&"b"));
        w.wait("a");
        w.wait("a");
        assert_eq!(w.next_ready(), None);
        w.finished(&"a");
        assert_eq!(w.next_ready(), Some("a"));
        assert_eq!(w.next_ready(), None);
    }

    #[test]
    fn no_more_than_the_limit_are_in_flight_and_waiting_keys_go_in_order() {
        let mut w = Writes::new(2);
        w.started("a");
        w.started("b");
        assert_eq!(w.in_flight(), 2);
        assert!(!w.ready(&"c"));
        w.wait("c");
        w.wait("d");
        assert_eq!(w.next_ready(), None);
        w.finished(&"b");
        assert_eq!(w.next_ready(), Some("c"));
        w.started("c");
        assert_eq!(w.next_ready(), None, "the slot went to c");
        w.finished(&"a");
        assert_eq!(w.next_ready(), Some("d"));
    }

    #[test]
    fn a_waiting_key_still_in_flight_lets_the_next_one_pass() {
        let mut w = Writes::new(3);
        w.started("a");
        w.wait("a");
        w.wait("b");
        assert_eq!(w.next_ready(), Some("b"));
        assert_eq!(w.next_ready(), None);
        w.finished(&"a");
        assert_eq!(w.next_ready(), Some("a"));
    }

    #[test]
    fn a_limit_of_zero_still_allows_one_write() {
        let mut w = Writes::new(0);
        assert!(w.ready(&1));
        w.started(1);
        assert!(!w.ready(&2));
    }
}
