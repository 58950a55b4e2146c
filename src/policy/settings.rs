//! Policy settings (DESIGN §2): the one typed parser of every `sluice.dev/*` setting, shared by the
//! validating webhook, the controller and `sluice explain`, so the three cannot disagree.
//!
//! ```text
//! Deployment annotations ─┐
//! Namespace annotations ──┼─ parse_layer (per key) ─► merge, most specific first ─► cross-key ─► Resolved
//! sluice-policy data ─────┘          │                (deployment > namespace >      checks      settings +
//!                                    ▼                 cluster > default)                        sources
//!                   validate_annotations (one layer, for the webhook)
//! ```
//!
//! Everything here is pure: maps in, values or every error out.
//!
//! The value types and their parsers live in [`super::values`] (re-exported here); this module
//! owns keys, levels, layering, sources and the messages.
//!
//! Choices where DESIGN is silent:
//! - `step-weight` and `step-weights` are one setting: the most specific layer holding either
//!   wins, and one layer holding both is an error.
//! - Cross-key checks run on the effective values in [`resolve`] and blame the key from the most
//!   specific layer: the first step ≤ `max-weight`; `match` needs a router with header matching
//!   (not `smi`); an NGINX canary Ingress matches one header only; `ab-testing` needs `match`
//!   and a router that matches requests (not `smi`: said once, blaming `strategy` or `router`,
//!   not again for `match`).
//!   [`validate_annotations`] runs them only when every key involved is in the one map it sees,
//!   so a Deployment is never refused for what its Namespace may supply.
//! - Keys Sluice itself writes and the control annotations are not settings and not errors on a
//!   Deployment; on a Namespace or in the policy ConfigMap, controls are refused (they steer one
//!   rollout). The ConfigMap's keys carry no prefix.
//! - Values are trimmed of surrounding whitespace (YAML block scalars end in a newline).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

pub use super::freeze::FreezeWindow;
use super::keys::{self, Control, OPT_IN_LABEL, PREFIX, Setting};
pub use super::values::{
    DEFAULT_HOOK_TIMEOUT, HookSpec, HookType, MatchRule, MatchType, MetricCheck, NotOneOf,
    NotifyKind, NotifySpec, QUERY_VARIABLES, RouterKind, StepPlan, Strategy, ValueMatch,
};
use super::values::{
    format_duration, nginx_unsupported, parse_count, parse_dns_label, parse_duration, parse_freeze,
    parse_matches, parse_metrics, parse_notify, parse_number, parse_percent, parse_subdomain,
    parse_webhooks, parse_weight, parse_weights,
};

/// Where an effective value came from, most specific first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    Deployment,
    Namespace,
    Cluster,
    Default,
}

impl Source {
    /// `deployment`, `namespace`, `cluster` or `default`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Deployment => "deployment",
            Source::Namespace => "namespace",
            Source::Cluster => "cluster",
            Source::Default => "default",
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which object a map of settings comes from; decides key form and which keys are allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    /// Deployment annotations (`sluice.dev/` keys).
    Deployment,
    /// Namespace annotations (`sluice.dev/` keys).
    Namespace,
    /// The `sluice-policy` ConfigMap's data (keys without the prefix).
    Cluster,
}

impl Level {
    /// `deployment`, `namespace` or `cluster`.
    pub fn as_str(self) -> &'static str {
        self.source().as_str()
    }

    /// The [`Source`] a value set at this level has.
    pub fn source(self) -> Source {
        match self {
            Level::Deployment => Source::Deployment,
            Level::Namespace => Source::Namespace,
            Level::Cluster => Source::Cluster,
        }
    }

    /// The key as a person writes it at this level (`sluice.dev/interval`, or `interval` in the
    /// ConfigMap).
    pub fn key(self, setting: Setting) -> String {
        match self {
            Level::Cluster => setting.as_str().to_string(),
            _ => setting.annotation(),
        }
    }
}

/// The three layers [`resolve`] merges. `None` means the object has no such map.
#[derive(Clone, Copy, Debug, Default)]
pub struct Layers<'a> {
    /// Deployment annotations (`sluice.dev/` keys; other annotations are ignored).
    pub deployment: Option<&'a BTreeMap<String, String>>,
    /// Namespace annotations (`sluice.dev/` keys; other annotations are ignored).
    pub namespace: Option<&'a BTreeMap<String, String>>,
    /// `sluice-policy` ConfigMap data (keys WITHOUT the prefix).
    pub cluster: Option<&'a BTreeMap<String, String>>,
}

/// Every setting's effective value. `Default` is DESIGN §2's defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub strategy: Strategy,
    pub router: RouterKind,
    /// With `nginx`: the Ingress to mirror; `None` means the Deployment's name.
    pub ingress: Option<String>,
    /// The apex Service; `None` means the Deployment's name.
    pub service: Option<String>,
    pub interval: Duration,
    pub steps: StepPlan,
    pub max_weight: u32,
    pub iterations: u32,
    pub threshold: u32,
    /// Percent, 0–100.
    pub success_rate: f64,
    pub latency_p99: Duration,
    pub min_requests: u64,
    pub baseline: bool,
    /// Error-rate points, 0–100.
    pub baseline_tolerance: f64,
    pub baseline_latency_ratio: f64,
    pub metrics: Vec<MetricCheck>,
    pub webhooks: Vec<HookSpec>,
    pub matches: Vec<MatchRule>,
    pub progress_deadline: Duration,
    pub freeze: Vec<FreezeWindow>,
    /// Where alerts go (`notify`, cluster only); empty: nowhere.
    pub notify: Vec<NotifySpec>,
}

impl Settings {
    /// The apex Service's name: `service`, or the Deployment's name.
    pub fn service_name<'a>(&'a self, deployment: &'a str) -> &'a str {
        self.service.as_deref().unwrap_or(deployment)
    }

    /// The Ingress the nginx router mirrors: `ingress`, or the Deployment's name.
    pub fn ingress_name<'a>(&'a self, deployment: &'a str) -> &'a str {
        self.ingress.as_deref().unwrap_or(deployment)
    }

    /// The value of `setting` as text a person could write back into the annotation, for
    /// `sluice explain`; `None` when it is unset (an empty list, or a name that defaults to the
    /// Deployment's). `step-weight` shows an increment plan and `step-weights` a list plan.
    pub fn value_text(&self, setting: Setting) -> Option<String> {
        let json = |v: serde_json::Value| Some(v.to_string());
        let nonempty = |v: serde_json::Value| match v.as_array() {
            Some(a) if a.is_empty() => None,
            _ => json(v),
        };
        match setting {
            Setting::Strategy => Some(self.strategy.to_string()),
            Setting::Router => Some(self.router.to_string()),
            Setting::Ingress => self.ingress.clone(),
            Setting::Service => self.service.clone(),
            Setting::Interval => Some(format_duration(self.interval)),
            Setting::StepWeight => match &self.steps {
                StepPlan::Increment(n) => Some(n.to_string()),
                StepPlan::List(_) => None,
            },
            Setting::StepWeights => match &self.steps {
                StepPlan::Increment(_) => None,
                StepPlan::List(ws) => Some(
                    ws.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(","),
                ),
            },
            Setting::MaxWeight => Some(self.max_weight.to_string()),
            Setting::Iterations => Some(self.iterations.to_string()),
            Setting::Threshold => Some(self.threshold.to_string()),
            Setting::SuccessRate => Some(self.success_rate.to_string()),
            Setting::LatencyP99 => Some(format_duration(self.latency_p99)),
            Setting::MinRequests => Some(self.min_requests.to_string()),
            Setting::Baseline => Some(if self.baseline { "on" } else { "off" }.to_string()),
            Setting::BaselineTolerance => Some(self.baseline_tolerance.to_string()),
            Setting::BaselineLatencyRatio => Some(self.baseline_latency_ratio.to_string()),
            Setting::Metrics => nonempty(
                self.metrics
                    .iter()
                    .map(|m| {
                        let mut o = serde_json::json!({"name": m.name, "query": m.query});
                        if let Some(min) = m.min {
                            o["min"] = min.into();
                        }
                        if let Some(max) = m.max {
                            o["max"] = max.into();
                        }
                        o
                    })
                    .collect(),
            ),
            Setting::Webhooks => nonempty(
                self.webhooks
                    .iter()
                    .map(|h| {
                        let mut o = serde_json::json!({
                            "type": h.kind.as_str(),
                            "url": h.url,
                            "timeout": format_duration(h.timeout),
                        });
                        if h.retries > 0 {
                            o["retries"] = h.retries.into();
                        }
                        if !h.metadata.is_empty() {
                            o["metadata"] = serde_json::json!(h.metadata);
                        }
                        o
                    })
                    .collect(),
            ),
            Setting::Match => nonempty(serde_json::json!(self.matches)),
            Setting::ProgressDeadline => Some(format_duration(self.progress_deadline)),
            Setting::Freeze => nonempty(
                self.freeze
                    .iter()
                    .map(|w| serde_json::Value::from(w.to_string()))
                    .collect(),
            ),
            Setting::Notify => {
                let one =
                    |n: &NotifySpec| serde_json::json!({"url": n.url, "type": n.kind.as_str()});
                match self.notify.as_slice() {
                    [] => None,
                    [n] => json(one(n)),
                    many => json(many.iter().map(one).collect()),
                }
            }
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            strategy: Strategy::Canary,
            router: RouterKind::Smi,
            ingress: None,
            service: None,
            interval: Duration::from_secs(60),
            steps: StepPlan::Increment(10),
            max_weight: 50,
            iterations: 10,
            threshold: 5,
            success_rate: 99.0,
            latency_p99: Duration::from_millis(500),
            min_requests: 20,
            baseline: true,
            baseline_tolerance: 0.5,
            baseline_latency_ratio: 1.2,
            metrics: Vec::new(),
            webhooks: Vec::new(),
            matches: Vec::new(),
            progress_deadline: Duration::from_secs(600),
            freeze: Vec::new(),
            notify: Vec::new(),
        }
    }
}

/// The effective settings of one Deployment and where each came from (every [`Setting`] is a key).
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    pub settings: Settings,
    pub sources: BTreeMap<Setting, Source>,
}

/// One line of `sluice explain`: a setting, its effective value as text (`None`: unset) and
/// where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explained {
    pub setting: Setting,
    pub value: Option<String>,
    pub source: Source,
}

impl Resolved {
    /// Where `setting`'s effective value came from.
    pub fn source(&self, setting: Setting) -> Source {
        self.sources
            .get(&setting)
            .copied()
            .unwrap_or(Source::Default)
    }

    /// Every setting in DESIGN §2's order, with its value and source. Of `step-weight` and
    /// `step-weights`, only the one that holds the plan is listed.
    pub fn explain(&self) -> Vec<Explained> {
        Setting::ALL
            .into_iter()
            .filter_map(|setting| {
                let value = self.settings.value_text(setting);
                let other_plan = matches!(setting, Setting::StepWeight | Setting::StepWeights)
                    && value.is_none();
                (!other_plan).then(|| Explained {
                    setting,
                    value,
                    source: self.source(setting),
                })
            })
            .collect()
    }
}

/// A setting that cannot be accepted. Every message reads `KEY: "VALUE" PROBLEM; WHAT TO DO`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The value does not parse or is out of range.
    #[error("{key}: {value:?} {reason}")]
    Invalid {
        level: Level,
        key: String,
        value: String,
        reason: String,
    },
    /// A `sluice.dev/` key that is no setting.
    #[error("{key}: {value:?} is not a Sluice setting; {advice}")]
    UnknownKey {
        level: Level,
        key: String,
        value: String,
        advice: String,
    },
    /// A setting on an object where it is not allowed.
    #[error("{key}: {value:?} {reason}")]
    WrongLevel {
        level: Level,
        key: String,
        value: String,
        reason: String,
    },
    /// Valid alone, but contradicted by another setting.
    #[error("{key}: {value:?} {reason}")]
    Conflict {
        level: Level,
        key: String,
        value: String,
        reason: String,
    },
}

impl PolicyError {
    /// Low-cardinality label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            PolicyError::Invalid { .. } => "invalid_value",
            PolicyError::UnknownKey { .. } => "unknown_key",
            PolicyError::WrongLevel { .. } => "wrong_level",
            PolicyError::Conflict { .. } => "conflict",
        }
    }

    /// The key as written on the object.
    pub fn key(&self) -> &str {
        match self {
            PolicyError::Invalid { key, .. }
            | PolicyError::UnknownKey { key, .. }
            | PolicyError::WrongLevel { key, .. }
            | PolicyError::Conflict { key, .. } => key,
        }
    }

    /// The object the offending key is on.
    pub fn level(&self) -> Level {
        match self {
            PolicyError::Invalid { level, .. }
            | PolicyError::UnknownKey { level, .. }
            | PolicyError::WrongLevel { level, .. }
            | PolicyError::Conflict { level, .. } => *level,
        }
    }
}

/// Values longer than this are shortened in messages (a YAML list can be long).
const MAX_SHOWN_VALUE: usize = 120;

fn shown(value: &str) -> String {
    if value.chars().count() <= MAX_SHOWN_VALUE {
        value.to_string()
    } else {
        let mut s: String = value.chars().take(MAX_SHOWN_VALUE).collect();
        s.push('…');
        s
    }
}

// ---------------------------------------------------------------------------------------------
// One layer
// ---------------------------------------------------------------------------------------------

/// The settings one map sets, parsed, with the raw text of each for messages.
#[derive(Debug, Default)]
struct Partial {
    strategy: Option<Strategy>,
    router: Option<RouterKind>,
    ingress: Option<String>,
    service: Option<String>,
    interval: Option<Duration>,
    /// The key that set it (`StepWeight` or `StepWeights`) and the plan.
    steps: Option<(Setting, StepPlan)>,
    max_weight: Option<u32>,
    iterations: Option<u32>,
    threshold: Option<u32>,
    success_rate: Option<f64>,
    latency_p99: Option<Duration>,
    min_requests: Option<u64>,
    baseline: Option<bool>,
    baseline_tolerance: Option<f64>,
    baseline_latency_ratio: Option<f64>,
    metrics: Option<Vec<MetricCheck>>,
    webhooks: Option<Vec<HookSpec>>,
    matches: Option<Vec<MatchRule>>,
    progress_deadline: Option<Duration>,
    freeze: Option<Vec<FreezeWindow>>,
    notify: Option<Vec<NotifySpec>>,
    /// Raw values of the settings set validly.
    raw: BTreeMap<Setting, String>,
    /// Settings whose value was refused; cross-key checks leave them alone.
    broken: BTreeSet<Setting>,
}

/// What a key on an object is.
enum KeyKind {
    Setting(Setting),
    /// Not Sluice's, or written by Sluice, or a control on a Deployment: nothing to check.
    Ignored,
    Error(PolicyError),
}

fn classify(key: &str, value: &str, level: Level) -> KeyKind {
    let err_value = shown(value);
    let bare = match level {
        Level::Deployment | Level::Namespace => match key.strip_prefix(PREFIX) {
            Some(bare) => bare,
            None => return KeyKind::Ignored,
        },
        Level::Cluster => match key.strip_prefix(PREFIX) {
            Some(bare) => {
                return KeyKind::Error(PolicyError::UnknownKey {
                    level,
                    key: key.to_string(),
                    value: err_value,
                    advice: format!(
                        "the sluice-policy ConfigMap's keys carry no prefix; write {bare}"
                    ),
                });
            }
            None => key,
        },
    };
    // Exact match on the bare name (`Setting::from_str` would also strip a doubled prefix).
    if let Some(setting) = Setting::ALL.into_iter().find(|s| s.as_str() == bare) {
        return KeyKind::Setting(setting);
    }
    let control = Control::ALL.into_iter().find(|c| c.as_str() == bare);
    let full = format!("{PREFIX}{bare}");
    match (level, control) {
        (Level::Deployment, Some(_)) => return KeyKind::Ignored,
        (_, Some(c)) => {
            return KeyKind::Error(PolicyError::WrongLevel {
                level,
                key: key.to_string(),
                value: err_value,
                reason: format!(
                    "is a control for one rollout, not a policy; set {} on the Deployment instead",
                    c.annotation()
                ),
            });
        }
        _ => {}
    }
    if keys::WRITTEN.contains(&full.as_str()) {
        if level == Level::Deployment {
            return KeyKind::Ignored;
        }
        return KeyKind::Error(PolicyError::UnknownKey {
            level,
            key: key.to_string(),
            value: err_value,
            advice: "Sluice writes this key on Deployments only; remove it".to_string(),
        });
    }
    if full == OPT_IN_LABEL {
        return KeyKind::Error(PolicyError::UnknownKey {
            level,
            key: key.to_string(),
            value: err_value,
            advice: format!(
                "{OPT_IN_LABEL} is a label, not an annotation; move it to metadata.labels"
            ),
        });
    }
    let advice = match closest_setting(bare) {
        Some(s) => format!("did you mean {}?", level.key(s)),
        None => format!(
            "remove it, or use one of: {}",
            Setting::ALL.map(|s| s.as_str()).join(", ")
        ),
    };
    KeyKind::Error(PolicyError::UnknownKey {
        level,
        key: key.to_string(),
        value: err_value,
        advice,
    })
}

/// The known setting nearest to `bare` by edit distance, if within 3 edits.
fn closest_setting(bare: &str) -> Option<Setting> {
    Setting::ALL
        .into_iter()
        .map(|s| (edit_distance(bare, s.as_str()), s))
        .filter(|(d, _)| *d <= 3)
        .min_by_key(|(d, _)| *d)
        .map(|(_, s)| s)
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = subst.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Parses every key of one map; returns what it sets and every error.
fn parse_layer(map: &BTreeMap<String, String>, level: Level) -> (Partial, Vec<PolicyError>) {
    let mut p = Partial::default();
    let mut errors = Vec::new();
    for (key, value) in map {
        let setting = match classify(key, value, level) {
            KeyKind::Setting(s) => s,
            KeyKind::Ignored => continue,
            KeyKind::Error(e) => {
                errors.push(e);
                continue;
            }
        };
        if let Some(reason) = level_refusal(setting, level) {
            errors.push(PolicyError::WrongLevel {
                level,
                key: key.clone(),
                value: shown(value),
                reason,
            });
            continue;
        }
        match parse_into(&mut p, setting, value.trim()) {
            Ok(()) => {
                p.raw.insert(setting, value.clone());
            }
            Err(reason) => {
                p.broken.insert(setting);
                errors.push(PolicyError::Invalid {
                    level,
                    key: key.clone(),
                    value: shown(value),
                    reason,
                });
            }
        }
    }
    let both = [Setting::StepWeight, Setting::StepWeights]
        .map(|s| map.get(&level.key(s)))
        .map(|v| v.cloned());
    if let [Some(_), Some(list)] = both {
        errors.push(PolicyError::Conflict {
            level,
            key: level.key(Setting::StepWeights),
            value: shown(&list),
            reason: format!(
                "is set together with {}; set only one of them",
                level.key(Setting::StepWeight)
            ),
        });
        p.steps = None;
        p.broken.insert(Setting::StepWeight);
        p.broken.insert(Setting::StepWeights);
    }
    (p, errors)
}

/// Why `setting` may not be set at `level`, if it may not.
fn level_refusal(setting: Setting, level: Level) -> Option<String> {
    match (setting, level) {
        (Setting::Freeze, Level::Deployment) => Some(
            "cannot be set on a Deployment; set it on the Namespace or in the sluice-policy \
             ConfigMap"
                .into(),
        ),
        (Setting::Notify, Level::Deployment | Level::Namespace) => Some(format!(
            "cannot be set on a {}; set notify in the sluice-policy ConfigMap",
            if level == Level::Deployment {
                "Deployment"
            } else {
                "Namespace"
            }
        )),
        _ => None,
    }
}

/// Parses one value into its field; the error is the text after `KEY: "VALUE" `.
fn parse_into(p: &mut Partial, setting: Setting, v: &str) -> Result<(), String> {
    match setting {
        Setting::Strategy => {
            p.strategy = Some(
                v.parse()
                    .map_err(|e: NotOneOf| format!("is not a strategy; use {}", e.allowed))?,
            )
        }
        Setting::Router => {
            p.router = Some(
                v.parse()
                    .map_err(|e: NotOneOf| format!("is not a router; use {}", e.allowed))?,
            )
        }
        Setting::Ingress => p.ingress = Some(parse_subdomain(v, "an Ingress")?),
        Setting::Service => p.service = Some(parse_dns_label(v, "a Service")?),
        Setting::Interval => p.interval = Some(parse_duration(v, Duration::from_secs(1))?),
        Setting::StepWeight => p.steps = Some((setting, StepPlan::Increment(parse_weight(v)?))),
        Setting::StepWeights => p.steps = Some((setting, StepPlan::List(parse_weights(v)?))),
        Setting::MaxWeight => p.max_weight = Some(parse_weight(v)?),
        Setting::Iterations => p.iterations = Some(parse_count(v, "a number of iterations")?),
        Setting::Threshold => p.threshold = Some(parse_count(v, "a number of failed checks")?),
        Setting::SuccessRate => p.success_rate = Some(parse_percent(v)?),
        Setting::LatencyP99 => p.latency_p99 = Some(parse_duration(v, Duration::from_millis(1))?),
        Setting::MinRequests => {
            p.min_requests = Some(v.parse::<u64>().map_err(|_| {
                "is not a number of requests; use a whole number of at least 0, e.g. 20".to_string()
            })?)
        }
        Setting::Baseline => {
            p.baseline = Some(match v {
                "on" | "true" => true,
                "off" | "false" => false,
                _ => return Err("is not on or off; use on or off".into()),
            })
        }
        Setting::BaselineTolerance => {
            p.baseline_tolerance = Some(
                parse_number(v)
                    .filter(|x| (0.0..=100.0).contains(x))
                    .ok_or_else(|| {
                        "is not a number of error-rate points; use a number from 0 to 100, \
                         e.g. 0.5"
                            .to_string()
                    })?,
            )
        }
        Setting::BaselineLatencyRatio => {
            p.baseline_latency_ratio =
                Some(parse_number(v).filter(|x| *x >= 1.0).ok_or_else(|| {
                    "is not a latency ratio; use a number of at least 1, e.g. 1.2 for 20% slower"
                        .to_string()
                })?)
        }
        Setting::Metrics => p.metrics = Some(parse_metrics(v)?),
        Setting::Webhooks => p.webhooks = Some(parse_webhooks(v)?),
        Setting::Match => p.matches = Some(parse_matches(v)?),
        Setting::ProgressDeadline => {
            p.progress_deadline = Some(parse_duration(v, Duration::from_secs(1))?)
        }
        Setting::Freeze => p.freeze = Some(parse_freeze(v)?),
        Setting::Notify => p.notify = Some(parse_notify(v)?),
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Resolution
// ---------------------------------------------------------------------------------------------

/// Merges the layers, most specific first, over DESIGN's defaults. Every invalid value in any
/// layer, and every contradiction between effective values, is returned.
pub fn resolve(layers: &Layers) -> Result<Resolved, Vec<PolicyError>> {
    let mut errors = Vec::new();
    let mut parsed: Vec<(Level, Partial)> = Vec::new();
    for (level, map) in [
        (Level::Deployment, layers.deployment),
        (Level::Namespace, layers.namespace),
        (Level::Cluster, layers.cluster),
    ] {
        if let Some(map) = map {
            let (p, errs) = parse_layer(map, level);
            errors.extend(errs);
            parsed.push((level, p));
        }
    }
    let (settings, sources) = merge(&parsed);
    let broken: BTreeSet<Setting> = parsed
        .iter()
        .flat_map(|(_, p)| p.broken.iter().copied())
        .collect();
    let origin = |s: Setting| -> Option<Origin> {
        let source = sources.get(&s).copied()?;
        let (level, p) = parsed.iter().find(|(l, _)| l.source() == source)?;
        Some(Origin {
            level: *level,
            raw: p.raw.get(&s)?.clone(),
        })
    };
    errors.extend(cross_errors(&settings, &sources, &origin, &broken, false));
    if errors.is_empty() {
        Ok(Resolved { settings, sources })
    } else {
        Err(errors)
    }
}

/// Checks one object's map as the validating webhook must: every `sluice.dev/*` key known, every
/// value valid for `level`, and no contradiction among the keys the map itself sets.
pub fn validate_annotations(
    annotations: &BTreeMap<String, String>,
    level: Level,
) -> Vec<PolicyError> {
    let (p, mut errors) = parse_layer(annotations, level);
    let broken = p.broken.clone();
    let only = [(level, p)];
    let (settings, sources) = merge(&only);
    let origin = |s: Setting| -> Option<Origin> {
        Some(Origin {
            level,
            raw: only[0].1.raw.get(&s)?.clone(),
        })
    };
    errors.extend(cross_errors(&settings, &sources, &origin, &broken, true));
    errors
}

fn merge(parsed: &[(Level, Partial)]) -> (Settings, BTreeMap<Setting, Source>) {
    let d = Settings::default();
    let mut sources = BTreeMap::new();
    macro_rules! pick {
        ($field:ident, $setting:expr, $default:expr) => {{
            match parsed
                .iter()
                .find_map(|(l, p)| p.$field.clone().map(|v| (l.source(), v)))
            {
                Some((src, v)) => {
                    sources.insert($setting, src);
                    v
                }
                None => {
                    sources.insert($setting, Source::Default);
                    $default
                }
            }
        }};
    }
    macro_rules! pick_opt {
        ($field:ident, $setting:expr) => {{
            let v = parsed
                .iter()
                .find_map(|(l, p)| p.$field.clone().map(|v| (l.source(), v)));
            sources.insert(
                $setting,
                v.as_ref().map_or(Source::Default, |(src, _)| *src),
            );
            v.map(|(_, v)| v)
        }};
    }
    let steps = match parsed
        .iter()
        .find_map(|(l, p)| p.steps.clone().map(|(_, plan)| (l.source(), plan)))
    {
        Some((src, plan)) => {
            sources.insert(Setting::StepWeight, src);
            sources.insert(Setting::StepWeights, src);
            plan
        }
        None => {
            sources.insert(Setting::StepWeight, Source::Default);
            sources.insert(Setting::StepWeights, Source::Default);
            d.steps.clone()
        }
    };
    let settings = Settings {
        strategy: pick!(strategy, Setting::Strategy, d.strategy),
        router: pick!(router, Setting::Router, d.router),
        ingress: pick_opt!(ingress, Setting::Ingress),
        service: pick_opt!(service, Setting::Service),
        interval: pick!(interval, Setting::Interval, d.interval),
        steps,
        max_weight: pick!(max_weight, Setting::MaxWeight, d.max_weight),
        iterations: pick!(iterations, Setting::Iterations, d.iterations),
        threshold: pick!(threshold, Setting::Threshold, d.threshold),
        success_rate: pick!(success_rate, Setting::SuccessRate, d.success_rate),
        latency_p99: pick!(latency_p99, Setting::LatencyP99, d.latency_p99),
        min_requests: pick!(min_requests, Setting::MinRequests, d.min_requests),
        baseline: pick!(baseline, Setting::Baseline, d.baseline),
        baseline_tolerance: pick!(
            baseline_tolerance,
            Setting::BaselineTolerance,
            d.baseline_tolerance
        ),
        baseline_latency_ratio: pick!(
            baseline_latency_ratio,
            Setting::BaselineLatencyRatio,
            d.baseline_latency_ratio
        ),
        metrics: pick!(metrics, Setting::Metrics, d.metrics.clone()),
        webhooks: pick!(webhooks, Setting::Webhooks, d.webhooks.clone()),
        matches: pick!(matches, Setting::Match, d.matches.clone()),
        progress_deadline: pick!(
            progress_deadline,
            Setting::ProgressDeadline,
            d.progress_deadline
        ),
        freeze: pick!(freeze, Setting::Freeze, d.freeze.clone()),
        notify: pick!(notify, Setting::Notify, Vec::new()),
    };
    (settings, sources)
}

/// Where a non-default value was set, and its raw text.
struct Origin {
    level: Level,
    raw: String,
}

/// The key a contradiction between `a` and `b` is blamed on: the one from the more specific
/// layer (ties go to `a`), with its origin. `None` when neither was set (defaults agree).
fn blame(
    a: Setting,
    b: Setting,
    sources: &BTreeMap<Setting, Source>,
    origin: &dyn Fn(Setting) -> Option<Origin>,
) -> Option<(Setting, Origin)> {
    let src = |s: Setting| sources.get(&s).copied().unwrap_or(Source::Default);
    let first = if src(b) < src(a) { b } else { a };
    origin(first).map(|o| (first, o))
}

/// The conflict between settings `a` and `b`, blamed on the one from the more specific layer
/// ([`blame`]); `reason` words it, told whether `a` is the one blamed and where it came from.
fn blamed_conflict(
    a: Setting,
    b: Setting,
    sources: &BTreeMap<Setting, Source>,
    origin: &dyn Fn(Setting) -> Option<Origin>,
    reason: impl FnOnce(bool, &Origin) -> String,
) -> Option<PolicyError> {
    let (key, o) = blame(a, b, sources, origin)?;
    Some(PolicyError::Conflict {
        level: o.level,
        key: o.level.key(key),
        value: shown(&o.raw),
        reason: reason(key == a, &o),
    })
}

/// Where a setting's effective value came from, as words (`set on the Namespace`).
fn from(s: Setting, sources: &BTreeMap<Setting, Source>) -> &'static str {
    match sources.get(&s).copied().unwrap_or(Source::Default) {
        Source::Deployment => "set on the Deployment",
        Source::Namespace => "set on the Namespace",
        Source::Cluster => "set in the sluice-policy ConfigMap",
        Source::Default => "the default",
    }
}

/// Contradictions between effective values. With `all_present`, a check runs only when every key
/// it involves has an origin (one map alone); otherwise when at least one does.
fn cross_errors(
    s: &Settings,
    sources: &BTreeMap<Setting, Source>,
    origin: &dyn Fn(Setting) -> Option<Origin>,
    broken: &BTreeSet<Setting>,
    all_present: bool,
) -> Vec<PolicyError> {
    let mut out = Vec::new();
    let runs = |keys: &[Setting]| {
        if keys.iter().any(|k| broken.contains(k)) {
            false
        } else if all_present {
            keys.iter().all(|k| origin(*k).is_some())
        } else {
            keys.iter().any(|k| origin(*k).is_some())
        }
    };
    let step_key = if origin(Setting::StepWeights).is_some() {
        Setting::StepWeights
    } else {
        Setting::StepWeight
    };

    // The first step must not exceed max-weight.
    if let Some(first) = s.steps.first()
        && first > s.max_weight
        && runs(&[step_key, Setting::MaxWeight])
        && let Some((key, o)) = blame(Setting::MaxWeight, step_key, sources, origin)
    {
        let reason = if key == Setting::MaxWeight {
            format!(
                "is below the first step ({first} from {}, {}); raise it to at least {first} or \
                 lower the step",
                o.level.key(step_key),
                from(step_key, sources)
            )
        } else {
            format!(
                "starts above the max-weight ({}, {}); lower the first step to at most {} or \
                 raise {}",
                s.max_weight,
                from(Setting::MaxWeight, sources),
                s.max_weight,
                o.level.key(Setting::MaxWeight)
            )
        };
        out.push(PolicyError::Conflict {
            level: o.level,
            key: o.level.key(key),
            value: shown(&o.raw),
            reason,
        });
    }

    // Header matching needs a router that has it (under ab-testing, said once below).
    if !s.matches.is_empty()
        && s.router == RouterKind::Smi
        && s.strategy != Strategy::AbTesting
        && runs(&[Setting::Match, Setting::Router])
    {
        out.extend(blamed_conflict(
            Setting::Match,
            Setting::Router,
            sources,
            origin,
            |match_blamed, o| match match_blamed {
                true => format!(
                    "needs header matching, which SMI TrafficSplit does not have (router smi is \
                     {}); set {}: gateway-api",
                    from(Setting::Router, sources),
                    o.level.key(Setting::Router)
                ),
                false => format!(
                    "cannot serve {} ({}): SMI TrafficSplit has no header matching; use {}: \
                     gateway-api",
                    o.level.key(Setting::Match),
                    from(Setting::Match, sources),
                    o.level.key(Setting::Router)
                ),
            },
        ));
    }

    // An NGINX canary Ingress matches one header, nothing more.
    if s.router == RouterKind::Nginx
        && let Some(what) = nginx_unsupported(&s.matches)
        && runs(&[Setting::Match, Setting::Router])
    {
        out.extend(blamed_conflict(
            Setting::Match,
            Setting::Router,
            sources,
            origin,
            |match_blamed, o| match match_blamed {
                true => format!(
                    "{what}, but an NGINX canary Ingress matches one header only (router nginx \
                     is {}); keep one rule with one header, or set {}: gateway-api",
                    from(Setting::Router, sources),
                    o.level.key(Setting::Router)
                ),
                false => format!(
                    "cannot serve {} ({}), which {what}: an NGINX canary Ingress matches one \
                     header only; use {}: gateway-api",
                    o.level.key(Setting::Match),
                    from(Setting::Match, sources),
                    o.level.key(Setting::Router)
                ),
            },
        ));
    }

    // A/B testing routes by rules; without them nobody reaches the new version.
    if s.strategy == Strategy::AbTesting
        && s.matches.is_empty()
        && runs(&[Setting::Strategy, Setting::Match])
        && let Some(o) = origin(Setting::Strategy)
    {
        out.push(PolicyError::Conflict {
            level: o.level,
            key: o.level.key(Setting::Strategy),
            value: shown(&o.raw),
            reason: format!(
                "needs {} rules choosing which requests see the new version; add e.g. {}: \
                 '[{{headers: [{{name: x-canary, value: insider}}]}}]' or use strategy canary",
                o.level.key(Setting::Match),
                o.level.key(Setting::Match)
            ),
        });
    }

    // A/B testing needs a router that matches requests: a TrafficSplit only weighs them.
    if s.strategy == Strategy::AbTesting
        && s.router == RouterKind::Smi
        && runs(&[Setting::Strategy, Setting::Router])
    {
        out.extend(blamed_conflict(
            Setting::Strategy,
            Setting::Router,
            sources,
            origin,
            |strategy_blamed, o| match strategy_blamed {
                true => format!(
                    "routes requests by headers and cookies, and SMI TrafficSplit has no header \
                     matching (router smi is {}); set {}: gateway-api, or nginx for an app \
                     exposed through an NGINX Ingress",
                    from(Setting::Router, sources),
                    o.level.key(Setting::Router)
                ),
                false => format!(
                    "cannot serve strategy ab-testing ({}): SMI TrafficSplit has no header \
                     matching; use {}: gateway-api, or nginx for an app exposed through an \
                     NGINX Ingress",
                    from(Setting::Strategy, sources),
                    o.level.key(Setting::Router)
                ),
            },
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::keys::{
        APEX_SELECTOR_ANNOTATION, PHASE_LABEL, STABLE_TEMPLATE_ANNOTATION, STATUS_ANNOTATION,
    };

    /// A map of annotations from `(key, value)` pairs.
    fn mk(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Resolves Deployment annotations alone.
    fn deploy(pairs: &[(&str, &str)]) -> Result<Resolved, Vec<PolicyError>> {
        let d = mk(pairs);
        resolve(&Layers {
            deployment: Some(&d),
            ..Layers::default()
        })
    }

    /// The one error a single Deployment annotation produces, as text.
    fn refused(key: &str, value: &str) -> String {
        let errs = validate_annotations(&mk(&[(key, value)]), Level::Deployment);
        assert_eq!(errs.len(), 1, "{key}={value:?}: {errs:?}");
        errs[0].to_string()
    }

    fn accepted(key: &str, value: &str) -> Settings {
        deploy(&[(key, value)])
            .unwrap_or_else(|e| panic!("{key}={value:?}: {e:?}"))
            .settings
    }

    // --- defaults and precedence ---

    #[test]
    fn empty_layers_resolve_to_exactly_the_designed_defaults() {
        let r = resolve(&Layers::default()).unwrap();
        let s = &r.settings;
        assert_eq!(s.strategy, Strategy::Canary);
        assert_eq!(s.router, RouterKind::Smi);
        assert_eq!(s.ingress, None);
        assert_eq!(s.service, None);
        assert_eq!(s.interval, Duration::from_secs(60));
        assert_eq!(s.steps, StepPlan::Increment(10));
        assert_eq!(s.max_weight, 50);
        assert_eq!(s.iterations, 10);
        assert_eq!(s.threshold, 5);
        assert_eq!(s.success_rate, 99.0);
        assert_eq!(s.latency_p99, Duration::from_millis(500));
        assert_eq!(s.min_requests, 20);
        assert!(s.baseline);
        assert_eq!(s.baseline_tolerance, 0.5);
        assert_eq!(s.baseline_latency_ratio, 1.2);
        assert!(s.metrics.is_empty() && s.webhooks.is_empty() && s.matches.is_empty());
        assert_eq!(s.progress_deadline, Duration::from_secs(600));
        assert!(s.freeze.is_empty());
        assert!(s.notify.is_empty());
        assert_eq!(r.sources.len(), Setting::ALL.len());
        assert!(r.sources.values().all(|s| *s == Source::Default));
        assert_eq!(*s, Settings::default());
    }

    #[test]
    fn the_most_specific_layer_wins_and_the_sources_say_which() {
        let d = mk(&[("sluice.dev/interval", "30s")]);
        let n = mk(&[
            ("sluice.dev/interval", "2m"),
            ("sluice.dev/max-weight", "40"),
        ]);
        let c = mk(&[("interval", "5m"), ("max-weight", "30"), ("threshold", "3")]);
        let r = resolve(&Layers {
            deployment: Some(&d),
            namespace: Some(&n),
            cluster: Some(&c),
        })
        .unwrap();
        assert_eq!(r.settings.interval, Duration::from_secs(30));
        assert_eq!(r.settings.max_weight, 40);
        assert_eq!(r.settings.threshold, 3);
        assert_eq!(r.settings.min_requests, 20);
        assert_eq!(r.sources[&Setting::Interval], Source::Deployment);
        assert_eq!(r.sources[&Setting::MaxWeight], Source::Namespace);
        assert_eq!(r.sources[&Setting::Threshold], Source::Cluster);
        assert_eq!(r.sources[&Setting::MinRequests], Source::Default);
    }

    #[test]
    fn a_step_list_below_a_step_increment_still_yields_to_the_more_specific_layer() {
        let d = mk(&[("sluice.dev/step-weight", "20")]);
        let n = mk(&[("sluice.dev/step-weights", "5,10,25")]);
        let layers = Layers {
            deployment: Some(&d),
            namespace: Some(&n),
            cluster: None,
        };
        let r = resolve(&layers).unwrap();
        assert_eq!(r.settings.steps, StepPlan::Increment(20));
        assert_eq!(r.sources[&Setting::StepWeight], Source::Deployment);
        assert_eq!(r.sources[&Setting::StepWeights], Source::Deployment);
        let r = resolve(&Layers {
            deployment: None,
            ..layers
        })
        .unwrap();
        assert_eq!(r.settings.steps, StepPlan::List(vec![5, 10, 25]));
        assert_eq!(r.sources[&Setting::StepWeights], Source::Namespace);
    }

    /// Three distinct valid values per setting, for (deployment, namespace, cluster).
    fn samples(s: Setting) -> [&'static str; 3] {
        match s {
            Setting::Strategy => ["blue-green", "canary", "blue-green"],
            Setting::Router => ["nginx", "gateway-api", "nginx"],
            Setting::Ingress => ["a", "b.c", "d"],
            Setting::Service => ["a", "b", "c"],
            Setting::Interval => ["30s", "2m", "5m"],
            Setting::StepWeight => ["5", "10", "20"],
            Setting::StepWeights => ["5,10", "1,2,3", "20,40"],
            Setting::MaxWeight => ["20", "30", "100"],
            Setting::Iterations => ["1", "2", "3"],
            Setting::Threshold => ["4", "3", "2"],
            Setting::SuccessRate => ["95", "99.9", "90"],
            Setting::LatencyP99 => ["1s", "250ms", "2s"],
            Setting::MinRequests => ["0", "100", "5"],
            Setting::Baseline => ["off", "on", "off"],
            Setting::BaselineTolerance => ["1", "0", "2.5"],
            Setting::BaselineLatencyRatio => ["1", "1.5", "2"],
            Setting::Metrics => [
                "[{name: a, query: up, max: 1}]",
                "[{name: b, query: up, min: 1}]",
                "[{name: c, query: up, max: 3}]",
            ],
            Setting::Webhooks => [
                "[{type: rollout, url: 'http://a/'}]",
                "[{type: event, url: 'http://b/'}]",
                "[{type: rollback, url: 'http://c/'}]",
            ],
            Setting::Match => [
                "[{headers: [{name: a, value: '1'}]}]",
                "[{headers: [{name: b, value: '2'}]}]",
                "[{headers: [{name: c, value: '3'}]}]",
            ],
            Setting::ProgressDeadline => ["1m", "20m", "1h"],
            Setting::Freeze => [
                "[\"Sat 00:00-Mon 06:00 UTC\"]",
                "[\"Sun 00:00-Mon 06:00 UTC\"]",
                "[\"Fri 00:00-Mon 06:00 UTC\"]",
            ],
            Setting::Notify => [
                "{url: 'http://a/', type: json}",
                "{url: 'http://b/', type: slack}",
                "{url: 'http://c/', type: json}",
            ],
        }
    }

    #[test]
    fn every_setting_resolves_deployment_over_namespace_over_cluster_over_default() {
        for setting in Setting::ALL {
            let [dv, nv, cv] = samples(setting);
            let allowed = |l: Level| level_refusal(setting, l).is_none();
            let at = |l: Level, v: &str| -> BTreeMap<String, String> {
                let mut m = BTreeMap::new();
                if allowed(l) {
                    m.insert(l.key(setting), v.to_string());
                }
                // `match` needs a router with header matching wherever it is set.
                if setting == Setting::Match {
                    m.insert(l.key(Setting::Router), "gateway-api".into());
                }
                m
            };
            let (d, n, c) = (
                at(Level::Deployment, dv),
                at(Level::Namespace, nv),
                at(Level::Cluster, cv),
            );
            // The value each layer alone resolves to, as text.
            let alone = |l: Level, m: &BTreeMap<String, String>| {
                let layers = match l {
                    Level::Deployment => Layers {
                        deployment: Some(m),
                        ..Layers::default()
                    },
                    Level::Namespace => Layers {
                        namespace: Some(m),
                        ..Layers::default()
                    },
                    Level::Cluster => Layers {
                        cluster: Some(m),
                        ..Layers::default()
                    },
                };
                resolve(&layers).unwrap().settings.value_text(setting)
            };
            let mut expect = vec![];
            for (level, map) in [
                (Level::Deployment, &d),
                (Level::Namespace, &n),
                (Level::Cluster, &c),
            ] {
                if allowed(level) {
                    expect.push((level.source(), alone(level, map)));
                }
            }
            expect.push((Source::Default, Settings::default().value_text(setting)));
            let stacks = [
                Layers {
                    deployment: Some(&d),
                    namespace: Some(&n),
                    cluster: Some(&c),
                },
                Layers {
                    deployment: None,
                    namespace: Some(&n),
                    cluster: Some(&c),
                },
                Layers {
                    deployment: None,
                    namespace: None,
                    cluster: Some(&c),
                },
                Layers::default(),
            ];
            let mut got = vec![];
            for layers in stacks {
                let r = resolve(&layers).unwrap_or_else(|e| panic!("{setting}: {e:?}"));
                let entry = (r.sources[&setting], r.settings.value_text(setting));
                if got.last() != Some(&entry) {
                    got.push(entry);
                }
            }
            assert_eq!(got, expect, "{setting}");
        }
    }

    #[test]
    fn garbage_values_never_panic_and_every_error_names_its_key() {
        let alphabet: Vec<char> = "09az:-,.[]{}'\"#&*!|>%@` \n\t/\\{}é".chars().collect();
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..300 {
            let value: String = (0..rng.usize(0..24))
                .map(|_| alphabet[rng.usize(0..alphabet.len())])
                .collect();
            for setting in Setting::ALL {
                for level in [Level::Deployment, Level::Namespace, Level::Cluster] {
                    let key = level.key(setting);
                    for e in validate_annotations(&mk(&[(key.as_str(), value.as_str())]), level) {
                        assert_eq!(e.key(), key, "{e}");
                        assert!(e.to_string().starts_with(&format!("{key}: ")), "{e}");
                    }
                }
            }
        }
    }

    #[test]
    fn resolution_returns_every_error_from_every_layer() {
        let d = mk(&[
            ("sluice.dev/step-weight", "150"),
            ("sluice.dev/interval", "soon"),
        ]);
        let c = mk(&[("threshold", "0")]);
        let errs = resolve(&Layers {
            deployment: Some(&d),
            namespace: None,
            cluster: Some(&c),
        })
        .unwrap_err();
        let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(errs.len(), 3, "{text:?}");
        assert!(text.contains(
            &"sluice.dev/step-weight: \"150\" is not a weight; use a whole number from 1 to 100"
                .to_string()
        ));
        assert!(text.contains(&"threshold: \"0\" is not a number of failed checks; use a whole number of at least 1".to_string()));
        assert_eq!(errs[2].level(), Level::Cluster);
    }

    #[test]
    fn annotations_of_other_tools_are_ignored() {
        let r = deploy(&[
            ("kubectl.kubernetes.io/last-applied-configuration", "{}"),
            ("deployment.kubernetes.io/revision", "3"),
            ("x.sluice.dev/whatever", "1"),
        ])
        .unwrap();
        assert_eq!(r.settings, Settings::default());
    }

    // --- scalar keys: valid and invalid ---

    #[test]
    fn strategy_takes_the_three_strategies() {
        assert_eq!(
            accepted("sluice.dev/strategy", "blue-green").strategy,
            Strategy::BlueGreen
        );
        assert_eq!(
            accepted("sluice.dev/strategy", "canary").strategy,
            Strategy::Canary
        );
        assert_eq!(
            refused("sluice.dev/strategy", "Canary"),
            "sluice.dev/strategy: \"Canary\" is not a strategy; use canary, blue-green or ab-testing"
        );
    }

    #[test]
    fn router_takes_smi_gateway_api_or_nginx() {
        assert_eq!(
            accepted("sluice.dev/router", "gateway-api").router,
            RouterKind::GatewayApi
        );
        assert_eq!(
            accepted("sluice.dev/router", "nginx").router,
            RouterKind::Nginx
        );
        assert_eq!(
            refused("sluice.dev/router", "istio"),
            "sluice.dev/router: \"istio\" is not a router; use smi, gateway-api or nginx"
        );
    }

    #[test]
    fn ingress_and_service_take_kubernetes_names() {
        assert_eq!(
            accepted("sluice.dev/ingress", "web.public")
                .ingress
                .as_deref(),
            Some("web.public")
        );
        assert_eq!(
            accepted("sluice.dev/service", "web-apex")
                .service
                .as_deref(),
            Some("web-apex")
        );
        assert!(refused("sluice.dev/ingress", "Web").starts_with(
            "sluice.dev/ingress: \"Web\" is not an Ingress name; use lowercase letters"
        ));
        assert!(refused("sluice.dev/service", "1web").starts_with(
            "sluice.dev/service: \"1web\" is not a Service name; use lowercase letters"
        ));
        assert!(refused("sluice.dev/service", "web.apex").contains("is not a Service name"));
        let long = "a".repeat(64);
        assert!(refused("sluice.dev/service", &long).contains("at most 63"));
    }

    #[test]
    fn interval_takes_go_style_durations_only() {
        assert_eq!(
            accepted("sluice.dev/interval", "30s").interval,
            Duration::from_secs(30)
        );
        assert_eq!(
            accepted("sluice.dev/interval", "1m30s").interval,
            Duration::from_secs(90)
        );
        assert_eq!(
            accepted("sluice.dev/interval", " 2m\n").interval,
            Duration::from_secs(120)
        );
        assert_eq!(
            refused("sluice.dev/interval", "5 minutes"),
            "sluice.dev/interval: \"5 minutes\" is not a duration; use e.g. 30s, 1m, 1m30s"
        );
        for bad in ["", "30", "1d", "-1m", "m", "1.5m"] {
            assert!(
                refused("sluice.dev/interval", bad).contains("is not a duration"),
                "{bad}"
            );
        }
        assert_eq!(
            refused("sluice.dev/interval", "500ms"),
            "sluice.dev/interval: \"500ms\" is too short; use at least 1s"
        );
    }

    #[test]
    fn step_weight_takes_a_weight_from_1_to_100() {
        assert_eq!(
            accepted("sluice.dev/step-weight", "5").steps,
            StepPlan::Increment(5)
        );
        assert_eq!(
            refused("sluice.dev/step-weight", "150"),
            "sluice.dev/step-weight: \"150\" is not a weight; use a whole number from 1 to 100"
        );
        for bad in ["0", "-5", "ten", "10%", "12.5"] {
            assert!(
                refused("sluice.dev/step-weight", bad).contains("is not a weight"),
                "{bad}"
            );
        }
    }

    #[test]
    fn step_weights_take_a_strictly_increasing_list() {
        assert_eq!(
            accepted("sluice.dev/step-weights", "5, 10,25,50").steps,
            StepPlan::List(vec![5, 10, 25, 50])
        );
        assert_eq!(
            refused("sluice.dev/step-weights", "10,5"),
            "sluice.dev/step-weights: \"10,5\" is not strictly increasing; list each weight once, \
             smallest first, e.g. 5,10,25,50"
        );
        assert!(refused("sluice.dev/step-weights", "5,10,10").contains("not strictly increasing"));
        for bad in ["", "5,,10", "5,101", "0,5", "5;10"] {
            assert!(
                refused("sluice.dev/step-weights", bad).contains("is not a list of weights"),
                "{bad}"
            );
        }
    }

    #[test]
    fn step_weight_and_step_weights_together_are_refused() {
        let errs = validate_annotations(
            &mk(&[
                ("sluice.dev/step-weight", "10"),
                ("sluice.dev/step-weights", "5,10"),
            ]),
            Level::Deployment,
        );
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(
            errs[0].to_string(),
            "sluice.dev/step-weights: \"5,10\" is set together with sluice.dev/step-weight; set \
             only one of them"
        );
        assert_eq!(errs[0].metric_label(), "conflict");
    }

    #[test]
    fn max_weight_takes_a_weight_from_1_to_100() {
        assert_eq!(accepted("sluice.dev/max-weight", "100").max_weight, 100);
        assert_eq!(
            refused("sluice.dev/max-weight", "101"),
            "sluice.dev/max-weight: \"101\" is not a weight; use a whole number from 1 to 100"
        );
    }

    #[test]
    fn iterations_and_threshold_take_positive_whole_numbers() {
        assert_eq!(accepted("sluice.dev/iterations", "3").iterations, 3);
        assert_eq!(accepted("sluice.dev/threshold", "1").threshold, 1);
        assert_eq!(
            refused("sluice.dev/iterations", "0"),
            "sluice.dev/iterations: \"0\" is not a number of iterations; use a whole number of at \
             least 1"
        );
        assert_eq!(
            refused("sluice.dev/threshold", "many"),
            "sluice.dev/threshold: \"many\" is not a number of failed checks; use a whole number \
             of at least 1"
        );
    }

    #[test]
    fn success_rate_takes_a_percentage() {
        assert_eq!(
            accepted("sluice.dev/success-rate", "99.5").success_rate,
            99.5
        );
        assert_eq!(
            accepted("sluice.dev/success-rate", "95%").success_rate,
            95.0
        );
        for bad in ["101", "-1", "NaN", "inf", "high"] {
            assert_eq!(
                refused("sluice.dev/success-rate", bad),
                format!(
                    "sluice.dev/success-rate: {bad:?} is not a percentage; use a number from 0 to \
                     100, e.g. 99 or 99.5"
                )
            );
        }
    }

    #[test]
    fn latency_p99_takes_a_positive_duration() {
        assert_eq!(
            accepted("sluice.dev/latency-p99", "250ms").latency_p99,
            Duration::from_millis(250)
        );
        assert_eq!(
            refused("sluice.dev/latency-p99", "0ms"),
            "sluice.dev/latency-p99: \"0ms\" is too short; use at least 1ms"
        );
        assert!(refused("sluice.dev/latency-p99", "0.5s").contains("is not a duration"));
    }

    #[test]
    fn min_requests_takes_a_whole_number_including_zero() {
        assert_eq!(accepted("sluice.dev/min-requests", "0").min_requests, 0);
        assert_eq!(accepted("sluice.dev/min-requests", "500").min_requests, 500);
        assert_eq!(
            refused("sluice.dev/min-requests", "-3"),
            "sluice.dev/min-requests: \"-3\" is not a number of requests; use a whole number of \
             at least 0, e.g. 20"
        );
    }

    #[test]
    fn baseline_takes_on_or_off() {
        assert!(!accepted("sluice.dev/baseline", "off").baseline);
        assert!(accepted("sluice.dev/baseline", "on").baseline);
        assert!(!accepted("sluice.dev/baseline", "false").baseline);
        assert_eq!(
            refused("sluice.dev/baseline", "yes"),
            "sluice.dev/baseline: \"yes\" is not on or off; use on or off"
        );
    }

    #[test]
    fn baseline_tolerance_takes_error_rate_points() {
        assert_eq!(
            accepted("sluice.dev/baseline-tolerance", "1").baseline_tolerance,
            1.0
        );
        assert_eq!(
            accepted("sluice.dev/baseline-tolerance", "0").baseline_tolerance,
            0.0
        );
        assert_eq!(
            refused("sluice.dev/baseline-tolerance", "-0.5"),
            "sluice.dev/baseline-tolerance: \"-0.5\" is not a number of error-rate points; use a \
             number from 0 to 100, e.g. 0.5"
        );
    }

    #[test]
    fn baseline_latency_ratio_takes_a_ratio_of_at_least_one() {
        assert_eq!(
            accepted("sluice.dev/baseline-latency-ratio", "1.5").baseline_latency_ratio,
            1.5
        );
        assert_eq!(
            refused("sluice.dev/baseline-latency-ratio", "0.8"),
            "sluice.dev/baseline-latency-ratio: \"0.8\" is not a latency ratio; use a number of \
             at least 1, e.g. 1.2 for 20% slower"
        );
    }

    #[test]
    fn progress_deadline_takes_a_duration() {
        assert_eq!(
            accepted("sluice.dev/progress-deadline", "15m").progress_deadline,
            Duration::from_secs(900)
        );
        assert_eq!(
            refused("sluice.dev/progress-deadline", "ten minutes"),
            "sluice.dev/progress-deadline: \"ten minutes\" is not a duration; use e.g. 30s, 1m, \
             1m30s"
        );
    }

    // --- YAML keys ---

    #[test]
    fn metrics_take_a_list_of_bounded_promql_templates() {
        let s = accepted(
            "sluice.dev/metrics",
            "- name: error-budget\n  query: sum(rate(errors{namespace=\"{{namespace}}\",deployment=\"{{ canary }}\"}[{{interval}}]))\n  max: 0.01\n- name: throughput\n  query: sum(rate(requests{deployment=\"{{primary}}\", app=\"{{name}}\"}[1m]))\n  min: 5\n  max: 1000\n",
        );
        assert_eq!(s.metrics.len(), 2);
        assert_eq!(s.metrics[0].name, "error-budget");
        assert_eq!((s.metrics[0].min, s.metrics[0].max), (None, Some(0.01)));
        assert_eq!(
            (s.metrics[1].min, s.metrics[1].max),
            (Some(5.0), Some(1000.0))
        );
        assert!(s.metrics[0].query.contains("{{ canary }}"));
    }

    #[test]
    fn metrics_refuse_unknown_template_variables_by_name() {
        assert_eq!(
            refused(
                "sluice.dev/metrics",
                "[{name: e, query: 'up{pod=\"{{pod}}\"}', max: 1}]"
            ),
            "sluice.dev/metrics: \"[{name: e, query: 'up{pod=\\\"{{pod}}\\\"}', max: 1}]\" check \
             \"e\" uses the unknown variable {{pod}} in its query; use namespace, name, canary, \
             primary or interval"
        );
        assert!(
            refused(
                "sluice.dev/metrics",
                "[{name: e, query: 'up{{name', max: 1}]"
            )
            .contains("without a closing }}")
        );
    }

    #[test]
    fn metrics_need_a_bound_a_name_and_sane_bounds() {
        assert!(
            refused("sluice.dev/metrics", "[{name: e, query: up}]")
                .ends_with("check \"e\" has neither min nor max; give at least one bound")
        );
        assert!(
            refused(
                "sluice.dev/metrics",
                "[{name: e, query: up, min: 2, max: 1}]"
            )
            .contains("has min 2 above max 1; swap them")
        );
        assert!(
            refused(
                "sluice.dev/metrics",
                "[{name: e, query: up, max: 1}, {name: e, query: up, max: 2}]"
            )
            .contains("has two checks named \"e\"")
        );
        assert!(
            refused("sluice.dev/metrics", "[{name: ' ', query: up, max: 1}]")
                .contains("without a name")
        );
        assert!(
            refused("sluice.dev/metrics", "[{name: e, query: '', max: 1}]").contains("empty query")
        );
    }

    #[test]
    fn metrics_that_are_not_the_right_yaml_say_what_shape_to_use() {
        let msg = refused("sluice.dev/metrics", "[{name: e, query: up, mx: 1}]");
        assert!(
            msg.contains("is not a YAML list of {name, query, min, max}"),
            "{msg}"
        );
        assert!(msg.contains("unknown field `mx`"), "{msg}");
        assert!(msg.contains("use e.g. [{name: errors"), "{msg}");
        assert!(refused("sluice.dev/metrics", "{name: e}").contains("is not a YAML list"));
        assert!(refused("sluice.dev/metrics", "[{name: e").contains("is not a YAML list"));
    }

    #[test]
    fn webhooks_take_a_list_of_typed_hooks_with_a_default_timeout() {
        let s = accepted(
            "sluice.dev/webhooks",
            "[{type: pre-rollout, url: 'http://loadtester.test/', timeout: 30s, retries: 2, metadata: {cmd: 'hey -z 1m', count: 5}}, {type: confirm-promotion, url: 'https://gate.example.com/approve'}]",
        );
        assert_eq!(s.webhooks.len(), 2);
        assert_eq!((s.webhooks[0].retries, s.webhooks[1].retries), (2, 0));
        assert_eq!(s.webhooks[0].kind, HookType::PreRollout);
        assert_eq!(s.webhooks[0].timeout, Duration::from_secs(30));
        assert_eq!(s.webhooks[0].metadata["cmd"], "hey -z 1m");
        assert_eq!(s.webhooks[0].metadata["count"], "5");
        assert_eq!(s.webhooks[1].kind, HookType::ConfirmPromotion);
        assert_eq!(s.webhooks[1].timeout, DEFAULT_HOOK_TIMEOUT);
        for t in HookType::ALL {
            assert_eq!(t.as_str().parse::<HookType>().unwrap(), t);
        }
    }

    #[test]
    fn webhooks_refuse_unknown_types_relative_urls_and_bad_timeouts() {
        assert!(
            refused(
                "sluice.dev/webhooks",
                "[{type: pre-deploy, url: 'http://x/'}]"
            )
            .ends_with(
                "has hook type \"pre-deploy\"; use pre-rollout, rollout, confirm-promotion, \
             post-rollout, rollback or event"
            )
        );
        for url in ["/hook", "ftp://x/", "loadtester:8080"] {
            let msg = refused(
                "sluice.dev/webhooks",
                &format!("[{{type: rollout, url: '{url}'}}]"),
            );
            assert!(
                msg.contains(&format!(
                    "has the url {url:?}, which is not an absolute http(s) URL"
                )),
                "{msg}"
            );
        }
        assert!(
            refused(
                "sluice.dev/webhooks",
                "[{type: rollout, url: 'http://x/', timeout: 10}]"
            )
            .contains("has hook timeout \"10\", which is not a duration")
        );
        assert!(
            refused(
                "sluice.dev/webhooks",
                "[{type: rollout, url: 'http://x/', retries: 9}]"
            )
            .contains("has hook retries 9; use a whole number from 0 to 5")
        );
        assert!(
            refused("sluice.dev/webhooks", "[{type: rollout, uri: 'http://x/'}]")
                .contains("unknown field `uri`")
        );
    }

    #[test]
    fn match_takes_httproute_style_header_and_query_matches() {
        let s = deploy(&[
            ("sluice.dev/router", "gateway-api"),
            (
                "sluice.dev/match",
                "[{headers: [{name: x-canary, value: insider}]}, {headers: [{name: cookie, type: RegularExpression, value: \"^(.*?;)?(canary=always)(;.*)?$\"}]}, {queryParams: [{name: beta, value: 'on'}]}]",
            ),
        ])
        .unwrap()
        .settings;
        assert_eq!(s.matches.len(), 3);
        assert_eq!(s.matches[0].headers[0].kind, MatchType::Exact);
        assert_eq!(s.matches[1].headers[0].kind, MatchType::RegularExpression);
        assert_eq!(s.matches[2].query_params[0].value, "on");
        // Serialises in HTTPRoute's shape, ready for a route's `matches`.
        assert_eq!(
            serde_json::to_value(&s.matches[1]).unwrap(),
            serde_json::json!({"headers": [{"type": "RegularExpression", "name": "cookie", "value": "^(.*?;)?(canary=always)(;.*)?$"}]})
        );
    }

    #[test]
    fn an_empty_list_clears_what_a_wider_layer_set() {
        let n = mk(&[
            ("sluice.dev/metrics", "[{name: e, query: up, max: 1}]"),
            (
                "sluice.dev/webhooks",
                "[{type: rollout, url: 'http://lt/'}]",
            ),
            ("sluice.dev/router", "gateway-api"),
            ("sluice.dev/match", "[{headers: [{name: a, value: b}]}]"),
        ]);
        let d = mk(&[
            ("sluice.dev/metrics", "[]"),
            ("sluice.dev/webhooks", "[]"),
            ("sluice.dev/match", "[]"),
        ]);
        let r = resolve(&Layers {
            deployment: Some(&d),
            namespace: Some(&n),
            cluster: None,
        })
        .unwrap();
        assert!(r.settings.metrics.is_empty() && r.settings.webhooks.is_empty());
        assert!(r.settings.matches.is_empty());
        assert_eq!(r.source(Setting::Match), Source::Deployment);
    }

    #[test]
    fn match_refuses_empty_rules_bad_names_and_bad_regexes() {
        let check = |v: &str, want: &str| {
            let errs = validate_annotations(
                &mk(&[
                    ("sluice.dev/router", "gateway-api"),
                    ("sluice.dev/match", v),
                ]),
                Level::Deployment,
            );
            assert_eq!(errs.len(), 1, "{errs:?}");
            let msg = errs[0].to_string();
            assert!(msg.contains(want), "{msg}");
        };
        check("[{}]", "rule 1 has no headers or queryParams");
        check(
            "[{headers: [{name: 'x canary', value: a}]}]",
            "rule 1 matches on \"x canary\"",
        );
        check(
            "[{headers: [{name: c, type: RegularExpression, value: '(a'}]}]",
            "rule 1 has the regular expression \"(a\", which does not compile (error: unclosed group); use RE2 syntax",
        );
        check(
            "[{headers: [{name: c, type: Prefix, value: a}]}]",
            "unknown variant `Prefix`",
        );
        check("[{path: {value: /beta}}]", "unknown field `path`");
    }

    #[test]
    fn freeze_takes_absolute_and_weekly_windows_on_namespaces_and_the_cluster() {
        let n = mk(&[(
            "sluice.dev/freeze",
            "[\"2026-12-24T00:00:00Z/2026-12-27T00:00:00Z\", \"Sat 00:00-Mon 06:00 UTC\"]",
        )]);
        let c = mk(&[("freeze", "Fri 18:00-Fri 23:00 UTC")]);
        let r = resolve(&Layers {
            deployment: None,
            namespace: Some(&n),
            cluster: Some(&c),
        })
        .unwrap();
        assert_eq!(r.settings.freeze.len(), 2);
        assert_eq!(r.sources[&Setting::Freeze], Source::Namespace);
        let t = humantime::parse_rfc3339("2026-12-25T12:00:00Z").unwrap();
        assert!(r.settings.freeze.iter().any(|w| w.contains(t)));
        let r = resolve(&Layers {
            cluster: Some(&c),
            ..Layers::default()
        })
        .unwrap();
        assert_eq!(
            r.settings.freeze,
            vec!["Fri 18:00-Fri 23:00 UTC".parse().unwrap()]
        );
    }

    #[test]
    fn freeze_takes_one_window_or_a_block_list() {
        let windows = |v: &str| {
            let n = mk(&[("sluice.dev/freeze", v)]);
            resolve(&Layers {
                namespace: Some(&n),
                ..Layers::default()
            })
            .unwrap()
            .settings
            .freeze
        };
        assert_eq!(
            windows("2026-12-24T00:00:00Z/2026-12-27T00:00:00Z"),
            vec!["2026-12-24T00:00:00Z/2026-12-27T00:00:00Z".parse().unwrap()]
        );
        assert_eq!(
            windows("- Sat 00:00-Mon 06:00 UTC\n- 2026-12-24T00:00:00Z/2026-12-27T00:00:00Z\n")
                .len(),
            2
        );
    }

    #[test]
    fn freeze_refuses_malformed_windows_and_deployment_level() {
        let errs = validate_annotations(
            &mk(&[("sluice.dev/freeze", "[weekends]")]),
            Level::Namespace,
        );
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].to_string().starts_with(
                "sluice.dev/freeze: \"[weekends]\" has the window \"weekends\", which is not a \
                 freeze window"
            ),
            "{}",
            errs[0]
        );
        assert!(
            validate_annotations(&mk(&[("sluice.dev/freeze", "[]")]), Level::Namespace)[0]
                .to_string()
                .contains("has no windows")
        );
        assert_eq!(
            refused("sluice.dev/freeze", "Sat 00:00-Mon 06:00 UTC"),
            "sluice.dev/freeze: \"Sat 00:00-Mon 06:00 UTC\" cannot be set on a Deployment; set it \
             on the Namespace or in the sluice-policy ConfigMap"
        );
    }

    #[test]
    fn notify_is_accepted_only_in_the_cluster_policy() {
        let c = mk(&[(
            "notify",
            "{url: 'https://hooks.slack.com/services/T/B/X', type: slack}",
        )]);
        let r = resolve(&Layers {
            cluster: Some(&c),
            ..Layers::default()
        })
        .unwrap();
        assert_eq!(
            r.settings.notify,
            vec![NotifySpec {
                url: "https://hooks.slack.com/services/T/B/X".into(),
                kind: NotifyKind::Slack
            }]
        );
        let both = mk(&[(
            "notify",
            "[{url: 'https://hooks.slack.com/services/T/B/X', type: slack}, {url: 'http://alerts.test/', type: json}]",
        )]);
        let r = resolve(&Layers {
            cluster: Some(&both),
            ..Layers::default()
        })
        .unwrap();
        assert_eq!(
            r.settings.notify.iter().map(|n| n.kind).collect::<Vec<_>>(),
            vec![NotifyKind::Slack, NotifyKind::Json]
        );
        assert_eq!(
            r.settings.value_text(Setting::Notify).unwrap(),
            r#"[{"type":"slack","url":"https://hooks.slack.com/services/T/B/X"},{"type":"json","url":"http://alerts.test/"}]"#
        );
        assert_eq!(r.sources[&Setting::Notify], Source::Cluster);
        let v = "{url: 'http://alerts.test/', type: json}";
        assert_eq!(
            refused("sluice.dev/notify", v),
            format!(
                "sluice.dev/notify: {v:?} cannot be set on a Deployment; set notify in the \
                 sluice-policy ConfigMap"
            )
        );
        let errs = validate_annotations(&mk(&[("sluice.dev/notify", v)]), Level::Namespace);
        assert_eq!(errs[0].metric_label(), "wrong_level");
        assert!(errs[0].to_string().contains("cannot be set on a Namespace"));
    }

    #[test]
    fn notify_refuses_unknown_types_and_bad_urls() {
        let check = |v: &str, want: &str| {
            let errs = validate_annotations(&mk(&[("notify", v)]), Level::Cluster);
            assert_eq!(errs.len(), 1, "{errs:?}");
            assert!(errs[0].to_string().contains(want), "{}", errs[0]);
        };
        check(
            "{url: 'http://x/', type: teams}",
            "has type \"teams\"; use slack or json",
        );
        check(
            "{url: 'hooks', type: json}",
            "has the url \"hooks\", which is not an absolute",
        );
        check("{url: 'http://x/'}", "is not a YAML map {url, type}");
    }

    // --- keys ---

    #[test]
    fn unknown_keys_suggest_the_closest_setting() {
        let errs = validate_annotations(&mk(&[("sluice.dev/stepweight", "10")]), Level::Deployment);
        assert_eq!(
            errs[0].to_string(),
            "sluice.dev/stepweight: \"10\" is not a Sluice setting; did you mean \
             sluice.dev/step-weight?"
        );
        assert_eq!(errs[0].metric_label(), "unknown_key");
        let far = validate_annotations(&mk(&[("sluice.dev/colour", "blue")]), Level::Namespace);
        assert!(
            far[0]
                .to_string()
                .contains("remove it, or use one of: strategy, router")
        );
        let bare = validate_annotations(&mk(&[("intervall", "1m")]), Level::Cluster);
        assert!(
            bare[0].to_string().ends_with("did you mean interval?"),
            "{}",
            bare[0]
        );
    }

    #[test]
    fn a_doubled_prefix_is_not_a_setting() {
        let errs = validate_annotations(
            &mk(&[("sluice.dev/sluice.dev/interval", "1m")]),
            Level::Deployment,
        );
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].metric_label(), "unknown_key");
    }

    #[test]
    fn keys_sluice_writes_and_controls_are_not_errors_on_a_deployment() {
        let mut pairs = vec![
            (STATUS_ANNOTATION, "{\"phase\":\"Progressing\"}"),
            (STABLE_TEMPLATE_ANNOTATION, "{}"),
            (PHASE_LABEL, "Progressing"),
            (APEX_SELECTOR_ANNOTATION, "{\"app\":\"web\"}"),
        ];
        let controls: Vec<String> = Control::ALL.iter().map(|c| c.annotation()).collect();
        pairs.extend(controls.iter().map(|c| (c.as_str(), "true")));
        assert_eq!(validate_annotations(&mk(&pairs), Level::Deployment), vec![]);
        assert!(deploy(&pairs).is_ok());
    }

    #[test]
    fn controls_on_a_namespace_or_the_cluster_are_refused() {
        let errs = validate_annotations(&mk(&[("sluice.dev/pause", "true")]), Level::Namespace);
        assert_eq!(
            errs[0].to_string(),
            "sluice.dev/pause: \"true\" is a control for one rollout, not a policy; set \
             sluice.dev/pause on the Deployment instead"
        );
        let errs = validate_annotations(&mk(&[("break-glass", "true")]), Level::Cluster);
        assert_eq!(errs[0].metric_label(), "wrong_level");
    }

    #[test]
    fn the_opt_in_label_as_an_annotation_is_pointed_at_labels() {
        assert_eq!(
            refused(OPT_IN_LABEL, "enabled"),
            "sluice.dev/canary: \"enabled\" is not a Sluice setting; sluice.dev/canary is a \
             label, not an annotation; move it to metadata.labels"
        );
    }

    #[test]
    fn the_policy_configmap_takes_keys_without_the_prefix() {
        let errs = validate_annotations(&mk(&[("sluice.dev/interval", "1m")]), Level::Cluster);
        assert_eq!(
            errs[0].to_string(),
            "sluice.dev/interval: \"1m\" is not a Sluice setting; the sluice-policy ConfigMap's \
             keys carry no prefix; write interval"
        );
        assert_eq!(
            validate_annotations(&mk(&[("step-weight", "150")]), Level::Cluster)[0].to_string(),
            "step-weight: \"150\" is not a weight; use a whole number from 1 to 100"
        );
    }

    #[test]
    fn long_values_are_shortened_in_messages() {
        let v = format!("[{}]", "x".repeat(500));
        let msg = refused("sluice.dev/step-weights", &v);
        assert!(msg.len() < 300 && msg.contains('…'), "{msg}");
    }

    // --- cross-key checks ---

    #[test]
    fn max_weight_below_the_first_step_is_refused_on_the_more_specific_key() {
        assert_eq!(
            refused_all(&[
                ("sluice.dev/max-weight", "5"),
                ("sluice.dev/step-weight", "10")
            ]),
            vec![
                "sluice.dev/max-weight: \"5\" is below the first step (10 from \
                 sluice.dev/step-weight, set on the Deployment); raise it to at least 10 or lower \
                 the step"
            ]
        );
        // Alone on the Deployment, the step may come from the Namespace: not refused at admission…
        assert_eq!(
            validate_annotations(&mk(&[("sluice.dev/max-weight", "5")]), Level::Deployment),
            vec![]
        );
        // …but resolution against the default step refuses it.
        let errs = deploy(&[("sluice.dev/max-weight", "5")]).unwrap_err();
        assert!(
            errs[0]
                .to_string()
                .contains("below the first step (10 from sluice.dev/step-weight, the default)"),
            "{}",
            errs[0]
        );
        // A Deployment's big step against the Namespace's max blames the Deployment's key.
        let d = mk(&[("sluice.dev/step-weights", "60,80")]);
        let n = mk(&[("sluice.dev/max-weight", "50")]);
        let errs = resolve(&Layers {
            deployment: Some(&d),
            namespace: Some(&n),
            cluster: None,
        })
        .unwrap_err();
        assert_eq!(
            errs.iter().map(ToString::to_string).collect::<Vec<_>>(),
            vec![
                "sluice.dev/step-weights: \"60,80\" starts above the max-weight (50, set on the \
                 Namespace); lower the first step to at most 50 or raise sluice.dev/max-weight"
            ]
        );
        assert_eq!(errs[0].level(), Level::Deployment);
    }

    #[test]
    fn match_on_the_smi_router_is_refused_with_the_router_to_use() {
        let v = "[{headers: [{name: x-canary, value: insider}]}]";
        let errs = deploy(&[("sluice.dev/match", v)]).unwrap_err();
        assert_eq!(
            errs[0].to_string(),
            format!(
                "sluice.dev/match: {v:?} needs header matching, which SMI TrafficSplit does not \
                 have (router smi is the default); set sluice.dev/router: gateway-api"
            )
        );
        assert_eq!(
            refused_all(&[("sluice.dev/match", v), ("sluice.dev/router", "smi")]).len(),
            1
        );
        // The Namespace may choose the router, so the Deployment alone passes admission.
        assert_eq!(
            validate_annotations(&mk(&[("sluice.dev/match", v)]), Level::Deployment),
            vec![]
        );
        let n = mk(&[("sluice.dev/router", "gateway-api")]);
        let d = mk(&[("sluice.dev/match", v)]);
        assert!(
            resolve(&Layers {
                deployment: Some(&d),
                namespace: Some(&n),
                cluster: None
            })
            .is_ok()
        );
        // A Deployment that picks smi over a Namespace's matches is blamed on its router.
        let n = mk(&[
            ("sluice.dev/match", v),
            ("sluice.dev/router", "gateway-api"),
        ]);
        let d = mk(&[("sluice.dev/router", "smi")]);
        let errs = resolve(&Layers {
            deployment: Some(&d),
            namespace: Some(&n),
            cluster: None,
        })
        .unwrap_err();
        assert!(
            errs[0].to_string().starts_with(
                "sluice.dev/router: \"smi\" cannot serve sluice.dev/match (set on the Namespace)"
            ),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn match_on_nginx_is_limited_to_one_header() {
        let one = "[{headers: [{name: x-canary, type: RegularExpression, value: '^(yes|1)$'}]}]";
        assert_eq!(
            refused_all(&[("sluice.dev/router", "nginx"), ("sluice.dev/match", one)]),
            Vec::<String>::new()
        );
        let two = "[{headers: [{name: a, value: b}]}, {headers: [{name: c, value: d}]}]";
        assert_eq!(
            refused_all(&[("sluice.dev/router", "nginx"), ("sluice.dev/match", two)]),
            vec![format!(
                "sluice.dev/match: {two:?} has 2 rules, but an NGINX canary Ingress matches one \
                 header only (router nginx is set on the Deployment); keep one rule with one \
                 header, or set sluice.dev/router: gateway-api"
            )]
        );
        let query = "[{queryParams: [{name: beta, value: 'on'}]}]";
        assert!(
            refused_all(&[("sluice.dev/router", "nginx"), ("sluice.dev/match", query)])[0]
                .contains("matches on query parameters")
        );
        let both = "[{headers: [{name: a, value: b}, {name: c, value: d}]}]";
        assert!(
            refused_all(&[("sluice.dev/router", "nginx"), ("sluice.dev/match", both)])[0]
                .contains("has 2 header conditions in one rule")
        );
        // A Namespace's nginx router against a Deployment's rules blames the rules.
        let n = mk(&[("sluice.dev/router", "nginx")]);
        let d = mk(&[("sluice.dev/match", two)]);
        let errs = resolve(&Layers {
            deployment: Some(&d),
            namespace: Some(&n),
            cluster: None,
        })
        .unwrap_err();
        assert_eq!(errs[0].key(), "sluice.dev/match");
        assert!(
            errs[0]
                .to_string()
                .contains("(router nginx is set on the Namespace)"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn ab_testing_without_match_rules_is_refused_saying_what_to_add() {
        let errs = deploy(&[
            ("sluice.dev/strategy", "ab-testing"),
            ("sluice.dev/router", "gateway-api"),
        ])
        .unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(
            errs[0].to_string(),
            "sluice.dev/strategy: \"ab-testing\" needs sluice.dev/match rules choosing which \
             requests see the new version; add e.g. sluice.dev/match: \
             '[{headers: [{name: x-canary, value: insider}]}]' or use strategy canary"
        );
    }

    #[test]
    fn ab_testing_with_rules_is_accepted_on_gateway_api_and_on_nginx_with_one_header() {
        let rules = "[{headers: [{name: x-canary, value: insider}]}]";
        for router in ["gateway-api", "nginx"] {
            let s = deploy(&[
                ("sluice.dev/strategy", "ab-testing"),
                ("sluice.dev/router", router),
                ("sluice.dev/match", rules),
            ])
            .unwrap_or_else(|e| panic!("{router}: {e:?}"))
            .settings;
            assert_eq!(s.strategy, Strategy::AbTesting);
            assert_eq!(s.matches.len(), 1);
        }
        let cookie = "[{headers: [{name: Cookie, type: RegularExpression, value: 'beta=yes'}]}]";
        assert!(
            deploy(&[
                ("sluice.dev/strategy", "ab-testing"),
                ("sluice.dev/router", "nginx"),
                ("sluice.dev/match", cookie),
            ])
            .is_ok()
        );
    }

    #[test]
    fn ab_testing_with_smi_is_refused_once_explaining_that_a_trafficsplit_cannot_match() {
        let rules = "[{headers: [{name: x-canary, value: insider}]}]";
        // The router is smi by default: the strategy is blamed.
        let errs = deploy(&[
            ("sluice.dev/strategy", "ab-testing"),
            ("sluice.dev/match", rules),
        ])
        .unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(
            errs[0].to_string(),
            "sluice.dev/strategy: \"ab-testing\" routes requests by headers and cookies, and \
             SMI TrafficSplit has no header matching (router smi is the default); set \
             sluice.dev/router: gateway-api, or nginx for an app exposed through an NGINX Ingress"
        );
        // A Namespace's ab-testing against the Deployment's smi blames the router.
        let n = mk(&[
            ("sluice.dev/strategy", "ab-testing"),
            ("sluice.dev/match", rules),
        ]);
        let d = mk(&[("sluice.dev/router", "smi")]);
        let errs = resolve(&Layers {
            deployment: Some(&d),
            namespace: Some(&n),
            cluster: None,
        })
        .unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].key(), "sluice.dev/router");
        assert!(
            errs[0]
                .to_string()
                .contains("cannot serve strategy ab-testing (set on the Namespace)"),
            "{}",
            errs[0]
        );
        // One annotation map holding both is refused at apply time.
        let errs = refused_all(&[
            ("sluice.dev/strategy", "ab-testing"),
            ("sluice.dev/router", "smi"),
            ("sluice.dev/match", rules),
        ]);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].contains("no header matching"), "{errs:?}");
    }

    #[test]
    fn an_invalid_value_is_reported_once_not_again_as_a_conflict() {
        let errs = deploy(&[
            ("sluice.dev/strategy", "ab-testing"),
            ("sluice.dev/router", "gateway-api"),
            ("sluice.dev/match", "[{headers: oops}]"),
        ])
        .unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].metric_label(), "invalid_value");
    }

    fn refused_all(pairs: &[(&str, &str)]) -> Vec<String> {
        validate_annotations(&mk(pairs), Level::Deployment)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn every_value_prints_as_text_that_parses_back_to_it() {
        let c = mk(&[
            ("strategy", "blue-green"),
            ("router", "gateway-api"),
            ("ingress", "web.public"),
            ("service", "web-apex"),
            ("interval", "1m30s"),
            ("step-weights", "5,10,25,50"),
            ("max-weight", "60"),
            ("iterations", "4"),
            ("threshold", "2"),
            ("success-rate", "99.5"),
            ("latency-p99", "250ms"),
            ("min-requests", "0"),
            ("baseline", "off"),
            ("baseline-tolerance", "1.5"),
            ("baseline-latency-ratio", "1.25"),
            (
                "metrics",
                "[{name: e, query: 'up{a=\"{{name}}\"}', min: 0.5, max: 2}, {name: f, query: up, max: 1}]",
            ),
            (
                "webhooks",
                "[{type: rollout, url: 'http://lt.test/', timeout: 1m, metadata: {cmd: hey}}, {type: event, url: 'https://e.test/x'}]",
            ),
            (
                "match",
                "[{headers: [{name: x-canary, value: insider}]}, {queryParams: [{name: b, type: RegularExpression, value: '^on$'}]}]",
            ),
            ("progress-deadline", "1h"),
            (
                "freeze",
                "[\"Sat 00:00-Mon 06:00 UTC\", \"2026-12-24T00:00:00Z/2026-12-27T00:00:00Z\"]",
            ),
            ("notify", "{url: 'https://hooks.slack.com/x', type: slack}"),
        ]);
        let first = resolve(&Layers {
            cluster: Some(&c),
            ..Layers::default()
        })
        .unwrap()
        .settings;
        let text: BTreeMap<String, String> = Setting::ALL
            .into_iter()
            .filter_map(|s| first.value_text(s).map(|v| (s.as_str().to_string(), v)))
            .collect();
        assert_eq!(
            text.len(),
            Setting::ALL.len() - 1,
            "one of step-weight(s) is unset: {text:?}"
        );
        let again = resolve(&Layers {
            cluster: Some(&text),
            ..Layers::default()
        })
        .unwrap()
        .settings;
        assert_eq!(again, first);
        assert_eq!(text["interval"], "1m30s");
        assert_eq!(text["step-weights"], "5,10,25,50");
    }

    #[test]
    fn names_default_to_the_deployments() {
        let d = Settings::default();
        assert_eq!(d.service_name("web"), "web");
        assert_eq!(d.ingress_name("web"), "web");
        let s = accepted("sluice.dev/service", "web-apex");
        assert_eq!(s.service_name("web"), "web-apex");
    }

    #[test]
    fn explain_lists_each_setting_once_with_its_source() {
        let d = mk(&[("sluice.dev/step-weights", "5,10,25,50")]);
        let c = mk(&[("interval", "30s")]);
        let r = resolve(&Layers {
            deployment: Some(&d),
            namespace: None,
            cluster: Some(&c),
        })
        .unwrap();
        let rows = r.explain();
        assert_eq!(rows.len(), Setting::ALL.len() - 1);
        let row = |s: Setting| rows.iter().find(|r| r.setting == s).cloned();
        assert_eq!(row(Setting::StepWeight), None);
        assert_eq!(
            row(Setting::StepWeights),
            Some(Explained {
                setting: Setting::StepWeights,
                value: Some("5,10,25,50".into()),
                source: Source::Deployment
            })
        );
        assert_eq!(row(Setting::Interval).unwrap().source, Source::Cluster);
        assert_eq!(row(Setting::Service).unwrap().value, None);
        assert_eq!(rows[0].setting, Setting::Strategy);
    }

    #[test]
    fn unset_values_print_as_none() {
        let d = Settings::default();
        assert_eq!(d.value_text(Setting::Service), None);
        assert_eq!(d.value_text(Setting::Metrics), None);
        assert_eq!(d.value_text(Setting::StepWeights), None);
        assert_eq!(d.value_text(Setting::StepWeight).as_deref(), Some("10"));
        assert_eq!(d.value_text(Setting::LatencyP99).as_deref(), Some("500ms"));
        assert_eq!(d.value_text(Setting::Baseline).as_deref(), Some("on"));
    }

    #[test]
    fn sources_and_enums_print_their_words() {
        assert_eq!(
            [
                Source::Deployment,
                Source::Namespace,
                Source::Cluster,
                Source::Default
            ]
            .map(|s| s.to_string()),
            ["deployment", "namespace", "cluster", "default"]
        );
        for s in Strategy::ALL {
            assert_eq!(s.to_string().parse::<Strategy>().unwrap(), s);
        }
        for r in RouterKind::ALL {
            assert_eq!(r.to_string().parse::<RouterKind>().unwrap(), r);
        }
    }
}
