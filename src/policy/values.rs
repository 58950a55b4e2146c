//! Setting values (DESIGN §2): the types of the settings' values and the parsers from the text
//! of one annotation or ConfigMap entry to them. [`super::settings`] names the key in messages;
//! here each parser returns only what follows `KEY: "VALUE" ` (the problem and what to do).
//!
//! ```text
//! "1m30s" ──► parse_duration ──► 90s
//! "[{name: e, query: …, max: 1}]" ──► serde-saphyr ──► checks (names, bounds, {{variables}}) ──► Vec<MetricCheck>
//! ```
//!
//! Choices where DESIGN is silent:
//! - Durations are Go-style (`30s`, `1m`, `1m30s`, `500ms`, `2h`), as Flagger and Kubernetes
//!   users write them; the long forms humantime would also take (`5 minutes`) are refused so a
//!   value means the same in every tool.
//! - `StepPlan::weights` caps an increment plan at `max-weight` (step 30, max 50 → 30, 50); an
//!   explicit list is used as given up to `max-weight`.
//! - `baseline` takes `on`/`off` (and `true`/`false`); `success-rate` may end in `%`.
//! - `match` rules have HTTPRoute's `HTTPRouteMatch` shape (headers and queryParams, `Exact` or
//!   `RegularExpression` in RE2 syntax) and serialise back to it; a hook's `metadata` scalars are
//!   kept as strings, as Flagger's payload has them.
//! - `notify` is `{url, type}` with type `slack` (a Slack-compatible incoming webhook) or `json`,
//!   or a list of them (alerts go to each, e.g. Slack and a JSON receiver).
//! - An empty list (`[]`) for `metrics`, `webhooks` or `match` is valid and clears what a wider
//!   layer set; an empty `freeze` is refused, so a Namespace cannot lift the cluster's freeze by
//!   overriding it with nothing (break-glass is the audited way through).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::freeze::FreezeWindow;

/// `sluice.dev/strategy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Strategy {
    #[default]
    Canary,
    BlueGreen,
    AbTesting,
}

impl Strategy {
    pub const ALL: [Strategy; 3] = [Strategy::Canary, Strategy::BlueGreen, Strategy::AbTesting];

    /// `canary`, `blue-green` or `ab-testing`.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Canary => "canary",
            Strategy::BlueGreen => "blue-green",
            Strategy::AbTesting => "ab-testing",
        }
    }
}

/// `sluice.dev/router`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RouterKind {
    /// SMI TrafficSplit.
    #[default]
    Smi,
    /// Gateway API HTTPRoute.
    GatewayApi,
    /// NGINX canary Ingress.
    Nginx,
}

impl RouterKind {
    pub const ALL: [RouterKind; 3] = [RouterKind::Smi, RouterKind::GatewayApi, RouterKind::Nginx];

    /// `smi`, `gateway-api` or `nginx`.
    pub fn as_str(self) -> &'static str {
        match self {
            RouterKind::Smi => "smi",
            RouterKind::GatewayApi => "gateway-api",
            RouterKind::Nginx => "nginx",
        }
    }
}

/// An error of `FromStr` on the small enums: the value was none of the allowed words.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not one of {allowed}")]
pub struct NotOneOf {
    pub value: String,
    pub allowed: String,
}

macro_rules! word_enum {
    ($t:ty) => {
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl std::str::FromStr for $t {
            type Err = NotOneOf;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                <$t>::ALL
                    .into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| NotOneOf {
                        value: s.to_string(),
                        allowed: or_list(<$t>::ALL.iter().map(|v| v.as_str())),
                    })
            }
        }
    };
}
word_enum!(Strategy);
word_enum!(RouterKind);
word_enum!(HookType);
word_enum!(NotifyKind);

/// `a, b or c`.
fn or_list<'a>(words: impl Iterator<Item = &'a str>) -> String {
    let words: Vec<&str> = words.collect();
    match words.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => last.to_string(),
        None => String::new(),
    }
}

/// How the canary weight climbs: `step-weight` or `step-weights`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepPlan {
    /// Add this much at every passed step.
    Increment(u32),
    /// Exactly these weights, strictly increasing.
    List(Vec<u32>),
}

impl Default for StepPlan {
    fn default() -> Self {
        StepPlan::Increment(10)
    }
}

impl StepPlan {
    /// The canary weights of the steps before promotion. An increment climbs to `max_weight`,
    /// its last step capped there; a list is used as given up to `max_weight`.
    pub fn weights(&self, max_weight: u32) -> Vec<u32> {
        match self {
            StepPlan::Increment(0) => Vec::new(),
            StepPlan::Increment(step) => {
                let mut out: Vec<u32> = (1..)
                    .map(|i| i * step)
                    .take_while(|w| *w < max_weight)
                    .collect();
                if max_weight > 0 {
                    out.push(max_weight);
                }
                out
            }
            StepPlan::List(ws) => ws.iter().copied().filter(|w| *w <= max_weight).collect(),
        }
    }

    /// The first step's weight.
    pub fn first(&self) -> Option<u32> {
        match self {
            StepPlan::Increment(s) => Some(*s),
            StepPlan::List(ws) => ws.first().copied(),
        }
    }
}

/// A custom check from `sluice.dev/metrics`: a PromQL template whose value must lie in `[min, max]`.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricCheck {
    pub name: String,
    /// PromQL with `{{namespace}}`, `{{name}}`, `{{canary}}`, `{{primary}}`, `{{interval}}`.
    pub query: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// The variables a custom check's query may use.
pub const QUERY_VARIABLES: [&str; 5] = ["namespace", "name", "canary", "primary", "interval"];

/// When a hook is called (Flagger's hook types).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookType {
    PreRollout,
    Rollout,
    ConfirmPromotion,
    PostRollout,
    Rollback,
    Event,
}

impl HookType {
    pub const ALL: [HookType; 6] = [
        HookType::PreRollout,
        HookType::Rollout,
        HookType::ConfirmPromotion,
        HookType::PostRollout,
        HookType::Rollback,
        HookType::Event,
    ];

    /// The hook type as written in `sluice.dev/webhooks`.
    pub fn as_str(self) -> &'static str {
        match self {
            HookType::PreRollout => "pre-rollout",
            HookType::Rollout => "rollout",
            HookType::ConfirmPromotion => "confirm-promotion",
            HookType::PostRollout => "post-rollout",
            HookType::Rollback => "rollback",
            HookType::Event => "event",
        }
    }
}

/// A hook from `sluice.dev/webhooks`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookSpec {
    pub kind: HookType,
    /// Absolute `http://` or `https://` URL.
    pub url: String,
    /// Default 10s.
    pub timeout: Duration,
    /// Further attempts after a transport error or a 5xx answer (Flagger's `retries`); 0 by
    /// default, at most [`MAX_HOOK_RETRIES`].
    pub retries: u32,
    /// Passed through in the payload's `metadata`.
    pub metadata: BTreeMap<String, String>,
}

/// Default timeout of a hook call.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// Most retries a hook may ask for: each waits for a timeout, and a reconcile waits for them.
pub const MAX_HOOK_RETRIES: u32 = 5;

/// How a header or query parameter value is compared (Gateway API names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum MatchType {
    #[default]
    Exact,
    RegularExpression,
}

/// One header or query-parameter condition of a [`MatchRule`] (HTTPRoute shape).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueMatch {
    #[serde(rename = "type", default)]
    pub kind: MatchType,
    pub name: String,
    pub value: String,
}

/// One A/B rule from `sluice.dev/match`: every condition must hold (HTTPRouteMatch shape, so a
/// router can put it into an HTTPRoute as is).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MatchRule {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<ValueMatch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query_params: Vec<ValueMatch>,
}

/// The kind of endpoint alerts go to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotifyKind {
    /// Slack-compatible incoming webhook (`{"text": …}`).
    Slack,
    /// A JSON document with the rollout's name, namespace, phase and message.
    Json,
}

impl NotifyKind {
    pub const ALL: [NotifyKind; 2] = [NotifyKind::Slack, NotifyKind::Json];

    /// `slack` or `json`.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyKind::Slack => "slack",
            NotifyKind::Json => "json",
        }
    }
}

/// `sluice.dev/notify` (cluster only): where Succeeded / Failed / stuck alerts go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifySpec {
    pub url: String,
    pub kind: NotifyKind,
}

// ---------------------------------------------------------------------------------------------
// Parsers: each returns the reason text on failure.
// ---------------------------------------------------------------------------------------------

const WEIGHT_HINT: &str = "use a whole number from 1 to 100";
const DURATION_HINT: &str = "use e.g. 30s, 1m, 1m30s";

pub(super) fn parse_weight(v: &str) -> Result<u32, String> {
    v.parse::<u32>()
        .ok()
        .filter(|w| (1..=100).contains(w))
        .ok_or_else(|| format!("is not a weight; {WEIGHT_HINT}"))
}

pub(super) fn parse_weights(v: &str) -> Result<Vec<u32>, String> {
    let ws: Vec<u32> = v
        .split(',')
        .map(|w| {
            w.trim()
                .parse::<u32>()
                .ok()
                .filter(|w| (1..=100).contains(w))
        })
        .collect::<Option<_>>()
        .ok_or_else(|| {
            "is not a list of weights; use whole numbers from 1 to 100 separated by commas, \
             e.g. 5,10,25,50"
                .to_string()
        })?;
    if ws.windows(2).any(|p| p[0] >= p[1]) {
        return Err(
            "is not strictly increasing; list each weight once, smallest first, e.g. 5,10,25,50"
                .into(),
        );
    }
    Ok(ws)
}

pub(super) fn parse_count(v: &str, what: &str) -> Result<u32, String> {
    v.parse::<u32>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| format!("is not {what}; use a whole number of at least 1"))
}

/// A finite decimal number.
pub(super) fn parse_number(v: &str) -> Option<f64> {
    v.parse::<f64>().ok().filter(|x| x.is_finite())
}

pub(super) fn parse_percent(v: &str) -> Result<f64, String> {
    parse_number(v.strip_suffix('%').unwrap_or(v).trim_end())
        .filter(|x| (0.0..=100.0).contains(x))
        .ok_or_else(|| "is not a percentage; use a number from 0 to 100, e.g. 99 or 99.5".into())
}

/// A duration in the form the parser takes (`1m30s`, `500ms`, `0s`); sub-millisecond parts are
/// dropped.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let (h, m, s, ms) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    [(h, "h"), (m, "m"), (s, "s"), (ms, "ms")]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect()
}

/// Go-style duration (`1m30s`), at least `min`.
pub(super) fn parse_duration(v: &str, min: Duration) -> Result<Duration, String> {
    let not = || format!("is not a duration; {DURATION_HINT}");
    if !is_go_duration(v) {
        return Err(not());
    }
    let d = humantime::parse_duration(v).map_err(|_| not())?;
    if d < min {
        return Err(format!(
            "is too short; use at least {}",
            format_duration(min)
        ));
    }
    Ok(d)
}

/// `(digits unit)+` with unit one of `ms`, `s`, `m`, `h`.
fn is_go_duration(v: &str) -> bool {
    let b = v.as_bytes();
    let mut i = 0;
    if b.is_empty() {
        return false;
    }
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start || i == b.len() {
            return false;
        }
        if b[i..].starts_with(b"ms") {
            i += 2;
        } else if matches!(b[i], b's' | b'm' | b'h') {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

pub(super) fn parse_dns_label(v: &str, what: &str) -> Result<String, String> {
    if is_dns_label(v) && v.as_bytes()[0].is_ascii_lowercase() {
        Ok(v.to_string())
    } else {
        Err(format!(
            "is not {what} name; use lowercase letters, digits and '-', starting with a letter, \
             at most 63 characters, e.g. my-app"
        ))
    }
}

pub(super) fn parse_subdomain(v: &str, what: &str) -> Result<String, String> {
    if !v.is_empty() && v.len() <= 253 && v.split('.').all(is_dns_label) {
        Ok(v.to_string())
    } else {
        Err(format!(
            "is not {what} name; use lowercase letters, digits, '-' and '.', e.g. my-app"
        ))
    }
}

fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn parse_http_url(v: &str) -> Result<String, String> {
    match reqwest::Url::parse(v) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
            Ok(v.to_string())
        }
        _ => Err(format!(
            "the url {v:?}, which is not an absolute http(s) URL; use e.g. \
             http://loadtester.test/"
        )),
    }
}

/// First line of a YAML error, without the noise of long positions.
fn yaml_error(e: impl std::fmt::Display) -> String {
    let text = e.to_string();
    let line = text.lines().next().unwrap_or_default().trim();
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricYaml {
    name: String,
    query: String,
    #[serde(default)]
    min: Option<f64>,
    #[serde(default)]
    max: Option<f64>,
}

const METRICS_HINT: &str = "use e.g. [{name: errors, query: 'sum(rate(…{deployment=\"{{canary}}\"}[{{interval}}]))', max: 0.01}]";

pub(super) fn parse_metrics(v: &str) -> Result<Vec<MetricCheck>, String> {
    let raw: Vec<MetricYaml> = serde_saphyr::from_str(v).map_err(|e| {
        format!(
            "is not a YAML list of {{name, query, min, max}} ({}); {METRICS_HINT}",
            yaml_error(e)
        )
    })?;
    let mut names = BTreeSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for m in raw {
        let name = m.name.trim().to_string();
        if name.is_empty() {
            return Err(format!("has a check without a name; {METRICS_HINT}"));
        }
        if !names.insert(name.clone()) {
            return Err(format!(
                "has two checks named {name:?}; give each check its own name"
            ));
        }
        if m.query.trim().is_empty() {
            return Err(format!("check {name:?} has an empty query; {METRICS_HINT}"));
        }
        check_template(&m.query).map_err(|e| format!("check {name:?} {e}"))?;
        match (m.min, m.max) {
            (None, None) => {
                return Err(format!(
                    "check {name:?} has neither min nor max; give at least one bound"
                ));
            }
            (Some(lo), Some(hi)) if lo > hi => {
                return Err(format!(
                    "check {name:?} has min {lo} above max {hi}; swap them"
                ));
            }
            (lo, hi)
                if lo.is_some_and(|x| !x.is_finite()) || hi.is_some_and(|x| !x.is_finite()) =>
            {
                return Err(format!(
                    "check {name:?} has a bound that is not a finite number; use plain numbers"
                ));
            }
            _ => {}
        }
        out.push(MetricCheck {
            name,
            query: m.query,
            min: m.min,
            max: m.max,
        });
    }
    Ok(out)
}

/// Every `{{var}}` in `query` is a known variable and every `{{` is closed.
fn check_template(query: &str) -> Result<(), String> {
    let mut rest = query;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| "has a {{ without a closing }} in its query; close it".to_string())?;
        let var = after[..close].trim();
        if !QUERY_VARIABLES.contains(&var) {
            return Err(format!(
                "uses the unknown variable {{{{{var}}}}} in its query; use {}",
                or_list(QUERY_VARIABLES.iter().copied())
            ));
        }
        rest = &after[close + 2..];
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HookYaml {
    #[serde(rename = "type")]
    kind: String,
    url: String,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    retries: Option<u32>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

const HOOKS_HINT: &str =
    "use e.g. [{type: pre-rollout, url: http://loadtester.test/, timeout: 30s, retries: 2}]";

pub(super) fn parse_webhooks(v: &str) -> Result<Vec<HookSpec>, String> {
    let raw: Vec<HookYaml> = serde_saphyr::from_str(v).map_err(|e| {
        format!(
            "is not a YAML list of {{type, url, timeout, retries, metadata}} ({}); {HOOKS_HINT}",
            yaml_error(e)
        )
    })?;
    raw.into_iter()
        .map(|h| {
            let kind = h
                .kind
                .parse::<HookType>()
                .map_err(|e| format!("has hook type {:?}; use {}", h.kind, e.allowed))?;
            let url = parse_http_url(h.url.trim()).map_err(|e| format!("has {e}"))?;
            let timeout = match h.timeout.as_deref().map(str::trim) {
                None => DEFAULT_HOOK_TIMEOUT,
                Some(t) => parse_duration(t, Duration::from_millis(1))
                    .map_err(|e| format!("has hook timeout {t:?}, which {e}"))?,
            };
            let retries = h.retries.unwrap_or(0);
            if retries > MAX_HOOK_RETRIES {
                return Err(format!(
                    "has hook retries {retries}; use a whole number from 0 to {MAX_HOOK_RETRIES}"
                ));
            }
            Ok(HookSpec {
                kind,
                url,
                timeout,
                retries,
                metadata: h.metadata,
            })
        })
        .collect()
}

const MATCH_HINT: &str = "use e.g. [{headers: [{name: x-canary, value: insider}]}]";

/// What `rules` ask for that an NGINX canary Ingress cannot do: it matches one header
/// (`canary-by-header` with a value or a pattern) and nothing else. `None` when it can.
pub fn nginx_unsupported(rules: &[MatchRule]) -> Option<String> {
    match rules {
        [] => None,
        [rule] if !rule.query_params.is_empty() => Some("matches on query parameters".into()),
        [rule] if rule.headers.len() > 1 => Some(format!(
            "has {} header conditions in one rule",
            rule.headers.len()
        )),
        [_] => None,
        many => Some(format!("has {} rules", many.len())),
    }
}

pub(super) fn parse_matches(v: &str) -> Result<Vec<MatchRule>, String> {
    let rules: Vec<MatchRule> = serde_saphyr::from_str(v).map_err(|e| {
        format!(
            "is not a YAML list of {{headers, queryParams}} matches ({}); {MATCH_HINT}",
            yaml_error(e)
        )
    })?;
    for (i, rule) in rules.iter().enumerate() {
        if rule.headers.is_empty() && rule.query_params.is_empty() {
            return Err(format!(
                "rule {} has no headers or queryParams; give each rule at least one condition",
                i + 1
            ));
        }
        for m in rule.headers.iter().chain(&rule.query_params) {
            if m.name.is_empty() || !m.name.bytes().all(is_token_byte) {
                return Err(format!(
                    "rule {} matches on {:?}, which is not a header or parameter name; use \
                     letters, digits and '-'",
                    i + 1,
                    m.name
                ));
            }
            if m.kind == MatchType::RegularExpression
                && let Err(e) = regex::Regex::new(&m.value)
            {
                return Err(format!(
                    "rule {} has the regular expression {:?}, which does not compile ({}); \
                     use RE2 syntax",
                    i + 1,
                    m.value,
                    e.to_string().lines().last().unwrap_or_default().trim()
                ));
            }
        }
    }
    Ok(rules)
}

/// RFC 7230 token characters.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// One string or a list of strings.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

pub(super) fn parse_freeze(v: &str) -> Result<Vec<FreezeWindow>, String> {
    // A bare window is not valid YAML for a list, and `Sat 00:00-…` is a plain scalar anyway.
    let items = match serde_saphyr::from_str::<OneOrMany>(v) {
        Ok(OneOrMany::Many(xs)) => xs,
        Ok(OneOrMany::One(x)) => vec![x],
        Err(_) => vec![v.to_string()],
    };
    if items.is_empty() {
        return Err(
            "has no windows, which would lift a wider freeze; give at least one window, or use \
             sluice.dev/break-glass on the Deployment to pass a freeze once"
                .into(),
        );
    }
    items
        .iter()
        .map(|s| {
            s.parse::<FreezeWindow>()
                .map_err(|e| format!("has the window {s:?}, which {e}"))
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NotifyYaml {
    url: String,
    #[serde(rename = "type")]
    kind: String,
}

/// One `{url, type}` or a list of them.
#[derive(Deserialize)]
#[serde(untagged)]
enum NotifyYamls {
    One(NotifyYaml),
    Many(Vec<NotifyYaml>),
}

pub(super) fn parse_notify(v: &str) -> Result<Vec<NotifySpec>, String> {
    const HINT: &str =
        "use e.g. {url: https://hooks.slack.com/services/…, type: slack}, or a list of them";
    let raw: NotifyYamls = serde_saphyr::from_str(v).map_err(|e| {
        format!(
            "is not a YAML map {{url, type}} nor a list of them ({}); {HINT}",
            yaml_error(e)
        )
    })?;
    let raw = match raw {
        NotifyYamls::One(one) => vec![one],
        NotifyYamls::Many(many) => many,
    };
    raw.into_iter()
        .map(|raw| {
            let kind = raw
                .kind
                .parse::<NotifyKind>()
                .map_err(|e| format!("has type {:?}; use {}", raw.kind, e.allowed))?;
            let url = parse_http_url(raw.url.trim()).map_err(|e| format!("has {e}"))?;
            Ok(NotifySpec { url, kind })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_increment_climbs_to_max_weight() {
        assert_eq!(
            StepPlan::Increment(10).weights(50),
            vec![10, 20, 30, 40, 50]
        );
        assert_eq!(StepPlan::Increment(30).weights(50), vec![30, 50]);
        assert_eq!(StepPlan::Increment(50).weights(50), vec![50]);
        assert_eq!(StepPlan::Increment(1).weights(3), vec![1, 2, 3]);
    }

    #[test]
    fn a_list_is_used_as_given_up_to_max_weight() {
        let plan = StepPlan::List(vec![5, 10, 25, 50]);
        assert_eq!(plan.weights(50), vec![5, 10, 25, 50]);
        assert_eq!(plan.weights(30), vec![5, 10, 25]);
        assert_eq!(plan.weights(100), vec![5, 10, 25, 50]);
    }

    #[test]
    fn durations_print_in_the_form_they_are_parsed() {
        for s in ["1s", "500ms", "1m30s", "2h", "1h0m5s", "10m", "1h1m1s1ms"] {
            let d = parse_duration(s, Duration::ZERO).unwrap();
            assert_eq!(
                parse_duration(&format_duration(d), Duration::ZERO),
                Ok(d),
                "{s}"
            );
        }
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(3605)), "1h5s");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn go_durations_are_digits_and_units_only() {
        for ok in ["1s", "500ms", "1m30s", "2h", "1h0m5s"] {
            assert!(is_go_duration(ok), "{ok}");
        }
        for bad in ["", "1", "s", "1 m", "1.5s", "1d", "1mm", "5 minutes", "-1s"] {
            assert!(!is_go_duration(bad), "{bad}");
        }
    }

    #[test]
    fn query_templates_accept_exactly_the_five_variables() {
        let q = "x{ns=\"{{namespace}}\",a=\"{{ name }}\",c=\"{{canary}}\",p=\"{{primary}}\"}[{{interval}}]";
        assert_eq!(check_template(q), Ok(()));
        assert_eq!(check_template("no variables"), Ok(()));
        assert!(
            check_template("{{Namespace}}")
                .unwrap_err()
                .contains("{{Namespace}}")
        );
        assert!(
            check_template("{{}}")
                .unwrap_err()
                .contains("unknown variable {{}}")
        );
        assert!(
            check_template("{{canary")
                .unwrap_err()
                .contains("without a closing")
        );
    }

    #[test]
    fn kubernetes_names_follow_dns_rules() {
        assert!(parse_dns_label("web-1", "a Service").is_ok());
        assert!(parse_dns_label("-web", "a Service").is_err());
        assert!(parse_dns_label("web-", "a Service").is_err());
        assert!(parse_subdomain("web.example", "an Ingress").is_ok());
        assert!(parse_subdomain("web..example", "an Ingress").is_err());
        assert!(parse_subdomain(&"a".repeat(254), "an Ingress").is_err());
    }
}
