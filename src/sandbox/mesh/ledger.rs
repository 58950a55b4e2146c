//! What the simulated proxies counted: per-pod series exported on `/metrics` in Linkerd's
//! format, per-Deployment cumulative counters with 15 minutes of per-second history (for the
//! built-in query endpoint), and per-second traffic shares by receiving Deployment.
//!
//! Where it knowingly differs from linkerd-viz's Prometheus:
//! - The proxy exports `namespace`, `deployment`, `pod` and `pod_template_hash` itself, as
//!   Prometheus relabelling would add them; other pod labels, `authority`, `tls` and
//!   `target_addr` are not exported.
//! - A pod's series disappear from `/metrics` once the pod is gone (as its scrape target
//!   would); the per-Deployment counters keep counting across pods.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::sandbox::prometheus::Counters;

use super::TrafficSecond;
use crate::sandbox::workload::SimPod;

/// Linkerd's `response_latency_ms` bucket bounds, without `+Inf`.
pub const LATENCY_BUCKETS_MS: [f64; 25] = [
    1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 100.0, 200.0, 300.0, 400.0, 500.0,
    1000.0, 2000.0, 3000.0, 4000.0, 5000.0, 10000.0, 20000.0, 30000.0, 40000.0, 50000.0,
];

/// How long traffic shares and counter history are kept.
pub const RETENTION: Duration = Duration::from_secs(15 * 60);

/// A latency histogram: per-bucket counts (the last one is `+Inf`), sum and count.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    buckets: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    pub fn observe(&mut self, ms: f64) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; LATENCY_BUCKETS_MS.len() + 1];
        }
        let i = LATENCY_BUCKETS_MS
            .iter()
            .position(|le| ms <= *le)
            .unwrap_or(LATENCY_BUCKETS_MS.len());
        self.buckets[i] += 1;
        self.sum += ms;
        self.count += 1;
    }

    /// Cumulative `(le, count)` pairs ending with `+Inf`, as Prometheus exposes them.
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut acc = 0;
        LATENCY_BUCKETS_MS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .enumerate()
            .map(|(i, le)| {
                acc += self.buckets.get(i).copied().unwrap_or(0);
                (le, acc)
            })
            .collect()
    }
}

/// One response as a simulated proxy saw it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Response {
    pub failure: bool,
    pub latency_ms: f64,
}

impl Response {
    fn status_code(&self) -> &'static str {
        if self.failure { "500" } else { "200" }
    }
}

/// The inbound series of one pod.
#[derive(Clone, Debug)]
struct PodSeries {
    deployment: String,
    template_hash: String,
    requests: u64,
    success: u64,
    failure: u64,
    latency_ok: Histogram,
    latency_err: Histogram,
}

/// Cumulative counters of one Deployment.
#[derive(Clone, Debug, Default)]
struct Totals {
    requests: u64,
    failures: u64,
    latency: Histogram,
}

impl Totals {
    fn counters(&self) -> Counters {
        Counters {
            requests: self.requests,
            failures: self.failures,
            latency_buckets: self.latency.cumulative(),
        }
    }
}

type Key = (String, String);

/// Everything the simulated proxies counted.
#[derive(Debug, Default)]
pub struct Ledger {
    pods: BTreeMap<Key, PodSeries>,
    totals: BTreeMap<Key, Totals>,
    history: BTreeMap<Key, VecDeque<(SystemTime, Counters)>>,
    traffic: BTreeMap<Key, VecDeque<TrafficSecond>>,
}

fn unix_second(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Ledger {
    /// Namespaces that have pod series.
    pub fn namespaces(&self) -> BTreeSet<String> {
        self.pods.keys().map(|(ns, _)| ns.clone()).collect()
    }

    /// Counts one response of `pod` to a request sent to apex Service `apex`.
    pub fn record(&mut self, apex: &str, pod: &SimPod, response: Response, at: SystemTime) {
        self.record_as(apex, "", pod, response, at);
    }

    /// [`record`](Self::record) for a request of the named class `class` (`""`: unnamed, not
    /// counted by class).
    pub fn record_as(
        &mut self,
        apex: &str,
        class: &str,
        pod: &SimPod,
        response: Response,
        at: SystemTime,
    ) {
        let series = self
            .pods
            .entry((pod.namespace.clone(), pod.name.clone()))
            .or_insert_with(|| PodSeries {
                deployment: pod.deployment.clone(),
                template_hash: pod.template_hash.clone(),
                requests: 0,
                success: 0,
                failure: 0,
                latency_ok: Histogram::default(),
                latency_err: Histogram::default(),
            });
        series.requests += 1;
        if response.failure {
            series.failure += 1;
            series.latency_err.observe(response.latency_ms);
        } else {
            series.success += 1;
            series.latency_ok.observe(response.latency_ms);
        }
        let totals = self
            .totals
            .entry((pod.namespace.clone(), pod.deployment.clone()))
            .or_default();
        totals.requests += 1;
        totals.failures += u64::from(response.failure);
        totals.latency.observe(response.latency_ms);

        let second = unix_second(at);
        let seconds = self
            .traffic
            .entry((pod.namespace.clone(), apex.to_string()))
            .or_default();
        if seconds.back().is_none_or(|s| s.unix_second != second) {
            seconds.push_back(TrafficSecond {
                unix_second: second,
                by_deployment: BTreeMap::new(),
                by_image: BTreeMap::new(),
                by_class: BTreeMap::new(),
            });
        }
        if let Some(last) = seconds.back_mut() {
            *last
                .by_deployment
                .entry(pod.deployment.clone())
                .or_default() += 1;
            *last.by_image.entry(pod.image.clone()).or_default() += 1;
            if !class.is_empty() {
                let by_image = last.by_class.entry(class.to_string()).or_default();
                *by_image.entry(pod.image.clone()).or_default() += 1;
            }
        }
    }

    /// Samples every Deployment's counters at `at` (one sample per second is kept), drops
    /// what is older than [`RETENTION`] and the series of pods no longer in `live`.
    pub fn snapshot(&mut self, at: SystemTime, live: &BTreeSet<Key>) {
        let second = unix_second(at);
        for (key, totals) in &self.totals {
            let samples = self.history.entry(key.clone()).or_default();
            let sample = (at, totals.counters());
            match samples.back_mut() {
                Some(last) if unix_second(last.0) == second => *last = sample,
                _ => samples.push_back(sample),
            }
        }
        let horizon = at.checked_sub(RETENTION).unwrap_or(UNIX_EPOCH);
        for samples in self.history.values_mut() {
            while samples.len() > 1 && samples.get(1).is_some_and(|s| s.0 <= horizon) {
                samples.pop_front();
            }
        }
        let oldest = unix_second(horizon);
        for seconds in self.traffic.values_mut() {
            while seconds.front().is_some_and(|s| s.unix_second < oldest) {
                seconds.pop_front();
            }
        }
        self.pods.retain(|key, _| live.contains(key));
    }

    /// The counters of `deployment` as they stood at `at` (latest sample not after it).
    pub fn counters_at(
        &self,
        namespace: &str,
        deployment: &str,
        at: SystemTime,
    ) -> Option<Counters> {
        let samples = self
            .history
            .get(&(namespace.to_string(), deployment.to_string()))?;
        samples
            .iter()
            .rev()
            .find(|(t, _)| *t <= at)
            .map(|(_, c)| c.clone())
    }

    /// Per-second counts of requests to apex `service` by receiving Deployment.
    pub fn traffic(&self, namespace: &str, service: &str) -> Vec<TrafficSecond> {
        self.traffic
            .get(&(namespace.to_string(), service.to_string()))
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Prometheus text exposition (format 0.0.4) of every live pod's series.
    pub fn exposition(&self) -> String {
        let mut out = String::new();
        let labels = |(ns, pod): &Key, s: &PodSeries| {
            format!(
                "namespace=\"{}\",deployment=\"{}\",pod=\"{}\",pod_template_hash=\"{}\",direction=\"inbound\"",
                escape(ns),
                escape(&s.deployment),
                escape(pod),
                escape(&s.template_hash)
            )
        };
        out.push_str(
            "# HELP request_total Total count of HTTP requests.\n# TYPE request_total counter\n",
        );
        for (key, s) in &self.pods {
            let _ = writeln!(out, "request_total{{{}}} {}", labels(key, s), s.requests);
        }
        out.push_str(
            "# HELP response_total Total count of HTTP responses.\n# TYPE response_total counter\n",
        );
        for (key, s) in &self.pods {
            for (class, code, n) in [("success", "200", s.success), ("failure", "500", s.failure)] {
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "response_total{{{},classification=\"{class}\",status_code=\"{code}\"}} {n}",
                        labels(key, s)
                    );
                }
            }
        }
        out.push_str("# HELP response_latency_ms Elapsed times between a request's headers being received and its response stream completing\n# TYPE response_latency_ms histogram\n");
        for (key, s) in &self.pods {
            for (h, failure) in [(&s.latency_ok, false), (&s.latency_err, true)] {
                if h.count == 0 {
                    continue;
                }
                let code = Response {
                    failure,
                    latency_ms: 0.0,
                }
                .status_code();
                let l = format!("{},status_code=\"{code}\"", labels(key, s));
                for (le, n) in h.cumulative() {
                    let le = if le.is_infinite() {
                        "+Inf".to_string()
                    } else {
                        format!("{le}")
                    };
                    let _ = writeln!(out, "response_latency_ms_bucket{{{l},le=\"{le}\"}} {n}");
                }
                let _ = writeln!(out, "response_latency_ms_sum{{{l}}} {}", h.sum);
                let _ = writeln!(out, "response_latency_ms_count{{{l}}} {}", h.count);
            }
        }
        out
    }
}

/// Escapes a label value for the text format.
fn escape(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_pod(name: &str, deployment: &str) -> SimPod {
        SimPod {
            namespace: "ns".into(),
            name: name.into(),
            deployment: deployment.into(),
            labels: BTreeMap::new(),
            template_hash: "5d59d67564".into(),
            image: "app:1".into(),
            ready: true,
        }
    }

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    fn ok(ms: f64) -> Response {
        Response {
            failure: false,
            latency_ms: ms,
        }
    }

    fn live(pods: &[&str]) -> BTreeSet<Key> {
        pods.iter()
            .map(|p| ("ns".to_string(), p.to_string()))
            .collect()
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_inf() {
        let mut h = Histogram::default();
        for ms in [0.5, 1.0, 7.0, 60_000.0] {
            h.observe(ms);
        }
        let c = h.cumulative();
        assert_eq!(c.len(), 26);
        assert_eq!(c[0], (1.0, 2));
        assert_eq!(c[5], (10.0, 3));
        assert_eq!(c[24], (50000.0, 3));
        assert_eq!(c[25].1, 4);
        assert!(c[25].0.is_infinite());
        assert_eq!(h.count, 4);
    }

    #[test]
    fn exposition_lines_are_name_labels_value() {
        let mut ledger = Ledger::default();
        ledger.record("app", &mk_pod("app-x-1", "app"), ok(12.0), t(0));
        ledger.record(
            "app",
            &mk_pod("app-x-1", "app"),
            Response {
                failure: true,
                latency_ms: 3.0,
            },
            t(0),
        );
        let text = ledger.exposition();
        let mut names = BTreeSet::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (series, value) = line.rsplit_once(' ').expect("name{labels} value");
            value.parse::<f64>().expect("numeric value");
            let (name, labels) = series.split_once('{').expect("labels present");
            let labels = labels.strip_suffix('}').expect("labels closed");
            for pair in labels.split("\",") {
                let (k, v) = pair.split_once("=\"").expect("key=\"value\"");
                assert!(
                    k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "{k}"
                );
                assert!(!v.trim_end_matches('"').contains('"'), "{v}");
            }
            names.insert(name.to_string());
        }
        let expected = [
            "request_total",
            "response_total",
            "response_latency_ms_bucket",
            "response_latency_ms_sum",
            "response_latency_ms_count",
        ];
        assert_eq!(names, expected.iter().map(|s| s.to_string()).collect());
        assert!(text.contains(
            "response_total{namespace=\"ns\",deployment=\"app\",pod=\"app-x-1\",pod_template_hash=\"5d59d67564\",direction=\"inbound\",classification=\"failure\",status_code=\"500\"} 1"
        ));
        assert!(text.contains("status_code=\"200\",le=\"20\"} 1\n"));
        assert!(text.contains("status_code=\"200\",le=\"+Inf\"} 1\n"));
        assert!(text.contains("# TYPE response_latency_ms histogram"));
    }

    #[test]
    fn a_gone_pod_leaves_metrics_but_its_deployment_keeps_counting() {
        let mut ledger = Ledger::default();
        ledger.record("app", &mk_pod("app-x-1", "app"), ok(1.0), t(0));
        ledger.snapshot(t(0), &live(&[]));
        assert!(!ledger.exposition().contains("app-x-1"));
        ledger.record("app", &mk_pod("app-x-2", "app"), ok(1.0), t(1));
        ledger.snapshot(t(1), &live(&["app-x-2"]));
        assert_eq!(
            ledger.counters_at("ns", "app", t(1)).map(|c| c.requests),
            Some(2)
        );
    }

    #[test]
    fn counters_are_read_as_they_stood_at_a_time() {
        let mut ledger = Ledger::default();
        let pods = live(&["app-x-1"]);
        assert_eq!(ledger.counters_at("ns", "app", t(0)), None);
        for s in 0..10 {
            ledger.record("app", &mk_pod("app-x-1", "app"), ok(1.0), t(s));
            ledger.snapshot(t(s), &pods);
        }
        assert_eq!(
            ledger.counters_at("ns", "app", t(4)).map(|c| c.requests),
            Some(5)
        );
        assert_eq!(
            ledger.counters_at("ns", "app", t(100)).map(|c| c.requests),
            Some(10)
        );
        assert_eq!(
            ledger.counters_at("ns", "app", t(0) - Duration::from_secs(1)),
            None
        );
        assert_eq!(ledger.counters_at("ns", "other", t(4)), None);
    }

    #[test]
    fn history_and_traffic_keep_fifteen_minutes() {
        let mut ledger = Ledger::default();
        let pods = live(&["app-x-1"]);
        for s in (0..2000).step_by(10) {
            ledger.record("app", &mk_pod("app-x-1", "app"), ok(1.0), t(s));
            ledger.snapshot(t(s), &pods);
        }
        let traffic = ledger.traffic("ns", "app");
        let span = traffic.last().map(|l| l.unix_second).unwrap_or(0)
            - traffic.first().map(|f| f.unix_second).unwrap_or(0);
        assert!(span <= 900, "{span}");
        assert!(span >= 880, "{span}");
        assert_eq!(
            ledger
                .counters_at("ns", "app", t(1990 - 890))
                .map(|c| c.requests),
            Some(111)
        );
        assert_eq!(ledger.counters_at("ns", "app", t(0)), None);
    }

    #[test]
    fn traffic_is_counted_per_second_by_receiving_deployment() {
        let mut ledger = Ledger::default();
        ledger.record("app", &mk_pod("p-1", "app-primary"), ok(1.0), t(0));
        ledger.record("app", &mk_pod("c-1", "app"), ok(1.0), t(0));
        ledger.record("app", &mk_pod("p-1", "app-primary"), ok(1.0), t(1));
        let traffic = ledger.traffic("ns", "app");
        assert_eq!(traffic.len(), 2);
        assert_eq!(traffic[0].by_deployment.get("app"), Some(&1));
        assert_eq!(traffic[0].by_deployment.get("app-primary"), Some(&1));
        assert_eq!(traffic[0].by_image.values().sum::<u64>(), 2);
        assert_eq!(traffic[1].by_deployment.get("app"), None);
        assert!(ledger.traffic("ns", "other").is_empty());
    }

    #[test]
    fn requests_of_a_named_class_are_also_counted_under_it_by_image() {
        let mut ledger = Ledger::default();
        let canary = SimPod {
            image: "app:2".into(),
            ..mk_pod("c-1", "app")
        };
        ledger.record_as("app", "insiders", &canary, ok(1.0), t(0));
        ledger.record_as(
            "app",
            "everyone",
            &mk_pod("p-1", "app-primary"),
            ok(1.0),
            t(0),
        );
        ledger.record("app", &mk_pod("p-1", "app-primary"), ok(1.0), t(0));
        let second = &ledger.traffic("ns", "app")[0];
        assert_eq!(second.by_image.values().sum::<u64>(), 3);
        assert_eq!(
            second.by_class["insiders"],
            BTreeMap::from([("app:2".to_string(), 1)])
        );
        assert_eq!(
            second.by_class["everyone"],
            BTreeMap::from([("app:1".to_string(), 1)])
        );
        assert_eq!(second.by_class.len(), 2, "an unnamed request has no class");
    }
}
