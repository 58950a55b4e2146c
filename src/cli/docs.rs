//! Reference documentation generated from the code, so that it cannot drift: `sluice docs
//! annotations` prints the Markdown tables README.md carries (a test in this module fails when
//! README.md's copy differs from what it prints).
//!
//! What comes from where:
//! - the keys, their order and the prefix: [`crate::policy::keys`];
//! - each setting's default: [`Settings::default`] written by [`Settings::value_text`], the
//!   text `sluice explain` shows;
//! - where a setting may be set (Deployment, Namespace, the `sluice-policy` ConfigMap): the
//!   validating webhook's own check ([`settings::validate_annotations`]) run on the example at
//!   each level, so a level the parser refuses is never listed;
//! - the examples: checked by that same parser in this module's tests;
//! - the one-line meanings: [`meaning`] and [`control_meaning`], exhaustive matches, so a new
//!   key does not compile until it is documented.

use std::collections::BTreeMap;

use crate::policy::keys::{self, Control, Setting};
use crate::policy::settings::{self, Level, PolicyError, Settings};

/// What a setting decides, in one line of Markdown.
pub fn meaning(setting: Setting) -> &'static str {
    match setting {
        Setting::Strategy => {
            "`canary`, `blue-green`, or `ab-testing` (requests matching `match` go to the new version for `iterations`; `gateway-api` or `nginx`)"
        }
        Setting::Router => {
            "`smi` (TrafficSplit), `gateway-api` (HTTPRoute) or `nginx` (canary Ingress, for apps exposed outside the mesh)"
        }
        Setting::Ingress => "with `nginx`: the Ingress Sluice mirrors as `APP-canary`",
        Setting::Service => {
            "the apex Service the route splits (it must exist; its ports are copied)"
        }
        Setting::Interval => "how often a step is analysed (a duration: `30s`, `1m`)",
        Setting::StepWeight => "weight added per step",
        Setting::StepWeights => "explicit weights per step, instead of `step-weight`",
        Setting::MaxWeight => "weight at which promotion starts",
        Setting::Iterations => "analysis rounds for `blue-green` and `ab-testing`",
        Setting::Threshold => "failed checks that roll the canary back",
        Setting::SuccessRate => "minimum canary success rate, percent",
        Setting::LatencyP99 => "maximum canary p99 latency",
        Setting::MinRequests => {
            "canary requests per interval needed for a verdict (below it: no verdict)"
        }
        Setting::Baseline => "also compare the canary with the primary statistically (`on`/`off`)",
        Setting::BaselineTolerance => "error-rate points the canary may exceed the primary by",
        Setting::BaselineLatencyRatio => {
            "how much worse the canary's p99 may be than the primary's"
        }
        Setting::Metrics => {
            "extra checks: a YAML list of `{name, query, min, max}` (PromQL templates with `{{namespace}}`, `{{name}}`, `{{canary}}`, `{{primary}}`, `{{interval}}`)"
        }
        Setting::Webhooks => {
            "hooks: a YAML list of `{type, url, timeout, metadata}`; types `pre-rollout`, `rollout`, `confirm-promotion`, `post-rollout`, `rollback`, `event`"
        }
        Setting::Match => {
            "`ab-testing` routing rules: header or query matches, cookies as a `Cookie` header regex (`gateway-api`; `nginx`: one header)"
        }
        Setting::ProgressDeadline => {
            "how long a canary may take to become ready before it is rolled back"
        }
        Setting::Freeze => "change-freeze windows (UTC), weekly or absolute; a YAML list",
        Setting::Notify => {
            "where Succeeded, Failed and stuck alerts go: `{url, type}`, type `slack` or `json`"
        }
    }
}

/// A valid value of `setting`, as written in an annotation.
pub fn example(setting: Setting) -> &'static str {
    match setting {
        Setting::Strategy => "blue-green",
        Setting::Router => "gateway-api",
        Setting::Ingress => "web-public",
        Setting::Service => "web",
        Setting::Interval => "30s",
        Setting::StepWeight => "20",
        Setting::StepWeights => "5,10,25,50",
        Setting::MaxWeight => "60",
        Setting::Iterations => "5",
        Setting::Threshold => "3",
        Setting::SuccessRate => "99.5",
        Setting::LatencyP99 => "250ms",
        Setting::MinRequests => "50",
        Setting::Baseline => "off",
        Setting::BaselineTolerance => "1",
        Setting::BaselineLatencyRatio => "1.5",
        Setting::Metrics => {
            r#"[{name: queue, query: "max(queue_depth{deployment=\"{{canary}}\"})", max: 100}]"#
        }
        Setting::Webhooks => "[{type: pre-rollout, url: http://loadtester.test/, timeout: 30s}]",
        Setting::Match => "[{headers: [{name: x-canary, value: insider}]}]",
        Setting::ProgressDeadline => "5m",
        Setting::Freeze => "[Sat 00:00-Mon 06:00 UTC]",
        Setting::Notify => "{url: https://hooks.slack.com/services/T0/B0/X, type: slack}",
    }
}

/// What a control annotation does, in one line of Markdown.
pub fn control_meaning(control: Control) -> &'static str {
    match control {
        Control::Pause => {
            "hold the rollout at its weight (no analysis, no progress deadline); at rest, the next rollout holds at 0%"
        }
        Control::Resume => "continue a paused rollout",
        Control::Promote => {
            "skip the remaining steps once an analysis has passed; `force`: even before one has"
        }
        Control::Abort => "roll back now; the revision is refused until `retry`",
        Control::Retry => "let a rolled-back revision be applied again",
        Control::BreakGlass => "let this apply through a change freeze, once (read by the webhook)",
    }
}

/// The levels at which the parser accepts `value` for `setting`.
pub fn levels(setting: Setting, value: &str) -> Vec<Level> {
    [Level::Deployment, Level::Namespace, Level::Cluster]
        .into_iter()
        .filter(|&level| {
            let map = BTreeMap::from([(level.key(setting), value.to_string())]);
            !settings::validate_annotations(&map, level)
                .iter()
                .any(|e| matches!(e, PolicyError::WrongLevel { .. }))
        })
        .collect()
}

/// `value` as a Markdown code span (backticks inside are left as they are; none of ours has one).
fn code(value: &str) -> String {
    format!("`{}`", value.replace('|', "\\|"))
}

/// The reference: opt-in label, settings, controls, and what Sluice writes; Markdown.
pub fn annotations() -> String {
    let defaults = Settings::default();
    let mut out = String::new();
    out.push_str(&format!(
        "Opt in: label `{label}: enabled` on a Deployment or its Namespace; `{label}: disabled` on a Deployment opts it out of an opted-in Namespace.\n\n",
        label = keys::OPT_IN_LABEL
    ));
    out.push_str("Settings, most specific first: Deployment annotation, Namespace annotation, `sluice-policy` ConfigMap (the key without `sluice.dev/`), default.\n\n");
    out.push_str("| annotation | what | default | example | set on |\n|---|---|---|---|---|\n");
    for setting in Setting::ALL {
        let default = match (setting, defaults.value_text(setting)) {
            (Setting::Service | Setting::Ingress, None) => "the Deployment's name".to_string(),
            (_, Some(v)) => code(&v),
            (_, None) => "none".to_string(),
        };
        let on: Vec<&str> = levels(setting, example(setting))
            .into_iter()
            .map(|l| match l {
                Level::Deployment => "Deployment",
                Level::Namespace => "Namespace",
                Level::Cluster => "ConfigMap",
            })
            .collect();
        out.push_str(&format!(
            "| {} | {} | {default} | {} | {} |\n",
            code(&setting.annotation()),
            meaning(setting),
            code(example(setting)),
            on.join(", ")
        ));
    }
    out.push_str("\nControls, set on the Deployment (`sluice VERB deploy/NAME` sets them and waits); each is acted on once and removed:\n\n");
    out.push_str("| annotation | what |\n|---|---|\n");
    for control in Control::ALL {
        out.push_str(&format!(
            "| {} | {} |\n",
            code(&control.annotation()),
            control_meaning(control)
        ));
    }
    out.push_str(
        "\nWritten by Sluice (left alone when you re-apply a manifest that carries them): ",
    );
    let written: Vec<String> = keys::WRITTEN.iter().map(|k| code(k)).collect();
    out.push_str(&written.join(", "));
    out.push_str(".\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_is_accepted_by_the_parser_at_each_level_it_is_listed() {
        for setting in Setting::ALL {
            let value = example(setting);
            let on = levels(setting, value);
            assert!(!on.is_empty(), "{setting} is settable somewhere");
            for level in on {
                let map = BTreeMap::from([(level.key(setting), value.to_string())]);
                let errors = settings::validate_annotations(&map, level);
                assert!(
                    errors.is_empty(),
                    "{setting}={value} at {level}: {errors:?}"
                );
            }
        }
    }

    #[test]
    fn the_levels_are_the_parsers_freeze_not_on_deployments_notify_only_in_the_configmap() {
        let all = vec![Level::Deployment, Level::Namespace, Level::Cluster];
        assert_eq!(levels(Setting::Interval, "30s"), all);
        assert_eq!(
            levels(Setting::Freeze, example(Setting::Freeze)),
            vec![Level::Namespace, Level::Cluster]
        );
        assert_eq!(
            levels(Setting::Notify, example(Setting::Notify)),
            vec![Level::Cluster]
        );
    }

    #[test]
    fn the_reference_lists_every_key_with_its_built_in_default() {
        let text = annotations();
        for setting in Setting::ALL {
            assert!(
                text.contains(&format!("| `{}` |", setting.annotation())),
                "{setting}"
            );
        }
        for control in Control::ALL {
            assert!(text.contains(&format!("| `{}` |", control.annotation())));
        }
        assert!(text.contains("| `sluice.dev/interval` | how often a step is analysed (a duration: `30s`, `1m`) | `1m` |"), "{text}");
        assert!(text.contains("| `sluice.dev/service` | the apex Service the route splits (it must exist; its ports are copied) | the Deployment's name |"));
    }

    /// README.md carries the reference between these two lines.
    const BEGIN: &str = "<!-- BEGIN sluice docs annotations -->";
    const END: &str = "<!-- END sluice docs annotations -->";

    #[test]
    fn the_readme_carries_the_reference_as_sluice_docs_annotations_prints_it() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
        let readme = std::fs::read_to_string(path).expect("README.md");
        let start = readme
            .find(BEGIN)
            .unwrap_or_else(|| panic!("README.md lacks the line {BEGIN}"))
            + BEGIN.len();
        let end = readme
            .find(END)
            .unwrap_or_else(|| panic!("README.md lacks the line {END}"));
        let carried = readme[start..end].trim();
        assert!(
            carried == annotations().trim(),
            "README.md's annotation reference is out of date: replace what is between {BEGIN} and {END} with the output of `cargo run -- docs annotations`"
        );
    }
}
