//! `sluice pause|resume|promote|abort|retry deploy/NAME`: set the control annotation, then
//! watch the Deployment until the controller has acted on it, and say what happened.
//!
//! ```text
//! get Deployment + Namespace ── not found / not managed ──► error, nothing written
//!        │
//!        ▼
//! merge patch sluice.dev/VERB ──► watch until the controller removes it ──► status.lastControl
//!                                   (or --timeout: error, the annotation stays)   phase, weight, message
//! ```
//!
//! The controller decides (the state machine, `controller::machine`); the CLI only asks and
//! reports, so a refusal ("no analysis has passed yet", "nothing to promote") is the
//! controller's message, and the command fails with it.

use std::time::Duration;

use anyhow::{Context as _, bail};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::await_condition;
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::controller::machine::PROMOTE_FORCE;
use crate::controller::status::{ControlOutcome, Phase, RolloutStatus};
use crate::policy::keys::Control;
use crate::policy::optin;

/// The Deployment a command names: `deploy/NAME`, `deployment/NAME`, `deployments/NAME`,
/// `deployment.apps/NAME` or `NAME`.
pub fn parse_target(target: &str) -> anyhow::Result<String> {
    let name = match target.split_once('/') {
        None => target,
        Some(("deploy" | "deployment" | "deployments" | "deployment.apps", name)) => name,
        Some((kind, _)) => bail!(
            "{target:?}: Sluice manages Deployments, not {kind}; name one as deploy/NAME or NAME"
        ),
    };
    if name.is_empty() || name.contains('/') {
        bail!("{target:?} names no Deployment; write deploy/NAME or NAME");
    }
    Ok(name.to_string())
}

/// What the controller did with a control annotation.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub namespace: String,
    pub name: String,
    pub verb: Control,
    /// The acknowledgement, when the last one recorded is for this verb (another verb set at
    /// the same time may have been acted on after it).
    pub outcome: Option<ControlOutcome>,
    /// The acknowledgement's message, or the status message.
    pub message: String,
    pub phase: Phase,
    pub weight: u32,
}

impl Report {
    /// Reads the report from the status the controller wrote.
    pub fn from_status(namespace: &str, name: &str, verb: Control, s: &RolloutStatus) -> Report {
        let ack = s.last_control.as_ref().filter(|a| a.verb == verb);
        Report {
            namespace: namespace.to_string(),
            name: name.to_string(),
            verb,
            outcome: ack.map(|a| a.outcome),
            message: ack
                .map(|a| a.message.clone())
                .unwrap_or_else(|| s.message.clone()),
            phase: s.phase,
            weight: s.weight,
        }
    }

    /// The controller refused it.
    pub fn refused(&self) -> bool {
        self.outcome == Some(ControlOutcome::Refused)
    }
}

impl std::fmt::Display for Report {
    /// Two lines: what happened with the phase and weight, then the controller's words.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.outcome {
            Some(ControlOutcome::Applied) => "done",
            Some(ControlOutcome::Refused) => "refused",
            Some(ControlOutcome::NoOp) => "nothing to do",
            None => "acted on with other controls",
        };
        write!(
            f,
            "deploy/{} in {}: {} {what}; phase {}, weight {}%",
            self.name,
            self.namespace,
            self.verb.as_str(),
            self.phase,
            self.weight
        )?;
        if !self.message.is_empty() {
            write!(f, "\n  {}", self.message)?;
        }
        Ok(())
    }
}

/// Sets `sluice.dev/VERB` on the Deployment (`force` as promote's value with `force`) and waits
/// up to `timeout` for the controller to act on it.
pub async fn request(
    client: &Client,
    namespace: &str,
    name: &str,
    verb: Control,
    force: bool,
    timeout: Duration,
) -> anyhow::Result<Report> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let object = format!("Deployment {namespace}/{name}");
    let (deploy, ns) = super::read_target(client, namespace, name).await?;
    let ns_labels = ns.map(|n| n.labels().clone()).unwrap_or_default();
    let managed = optin::managed(deploy.labels(), &ns_labels);
    if !managed.is_managed() {
        bail!("{object} is {}", managed.reason());
    }
    let key = verb.annotation();
    let value = if verb == Control::Promote && force {
        PROMOTE_FORCE
    } else {
        "true"
    };
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "annotations": { &key: value } } })),
    )
    .await
    .with_context(|| format!("setting {key} on {object}"))?;

    let acted = {
        let key = key.clone();
        move |d: Option<&Deployment>| d.is_some_and(|d| !d.annotations().contains_key(&key))
    };
    let seen = tokio::time::timeout(timeout, await_condition(api.clone(), name, acted)).await;
    let deploy = match seen {
        Ok(Ok(Some(d))) => d,
        Ok(Ok(None)) => bail!("{object} was deleted while waiting for the controller"),
        Ok(Err(e)) => return Err(e).with_context(|| format!("watching {object}")),
        Err(_) => bail!(
            "the controller did not act on {key} on {object} within {}; is Sluice running (kubectl -n sluice-system get pods)? The annotation stays and is acted on when it runs; to cancel, run `kubectl -n {namespace} annotate deploy/{name} {key}-`",
            humantime::format_duration(timeout)
        ),
    };
    let status = RolloutStatus::from_annotations(Some(deploy.annotations()))
        .with_context(|| format!("reading the status of {object}"))?
        .with_context(|| format!("{object} has no status yet; Sluice has not onboarded it"))?;
    Ok(Report::from_status(namespace, name, verb, &status))
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::controller::status::{ControlAck, Timestamp};

    #[test]
    fn a_target_is_a_deployment_in_any_of_kubectls_spellings() {
        for t in [
            "web",
            "deploy/web",
            "deployment/web",
            "deployments/web",
            "deployment.apps/web",
        ] {
            assert_eq!(parse_target(t).unwrap(), "web", "{t}");
        }
    }

    #[test]
    fn a_target_of_another_kind_is_refused_with_the_right_spelling() {
        let err = parse_target("svc/web").unwrap_err().to_string();
        assert!(
            err.contains("not svc") && err.contains("deploy/NAME"),
            "{err}"
        );
        assert!(parse_target("deploy/").is_err());
        assert!(parse_target("deploy/a/b").is_err());
    }

    fn status_with(verb: Control, outcome: ControlOutcome) -> RolloutStatus {
        let mut s = RolloutStatus::new(Phase::Progressing, SystemTime::UNIX_EPOCH);
        s.weight = 20;
        s.message = "rolling out".into();
        s.last_control = Some(ControlAck {
            verb,
            at: Timestamp(SystemTime::UNIX_EPOCH),
            outcome,
            message: "no analysis has passed yet".into(),
        });
        s
    }

    #[test]
    fn the_report_says_what_happened_in_two_lines() {
        let s = status_with(Control::Promote, ControlOutcome::Refused);
        let r = Report::from_status("shop", "web", Control::Promote, &s);
        assert!(r.refused());
        assert_eq!(
            r.to_string(),
            "deploy/web in shop: promote refused; phase Progressing, weight 20%\n  no analysis has passed yet"
        );
    }

    #[test]
    fn a_report_for_a_verb_superseded_by_another_shows_the_status_message() {
        let s = status_with(Control::Abort, ControlOutcome::Applied);
        let r = Report::from_status("shop", "web", Control::Pause, &s);
        assert_eq!(r.outcome, None);
        assert!(!r.refused());
        assert_eq!(r.message, "rolling out");
    }
}
