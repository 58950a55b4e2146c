//! Admission call-outs, as kube-apiserver makes them: the registered
//! MutatingWebhookConfigurations, then the ValidatingWebhookConfigurations, each webhook called
//! with an AdmissionReview over HTTPS.
//!
//! ```text
//!  write ─▶ mutate(configs) ──────────────────────────────▶ validate(configs) ─▶ persist
//!           │ for each webhook, configurations by name:      │ every matching webhook
//!           │   rules · namespaceSelector · objectSelector   │ (concurrently), first
//!           │   dry run vs sideEffects                       │ error in order wins
//!           │   POST review ─▶ allowed? ─▶ JSONPatch applied │
//!           │ once more for IfNeeded webhooks if a later     │
//!           │ webhook changed the object                     │
//! ```
//!
//! - [`config`] reads configurations; [`matching`] decides who is called (with [`cel`] for
//!   `matchConditions`); [`review`] builds
//!   the review, reads the answer and words the errors; [`client`] does the HTTPS. Only
//!   [`Admitter`] does I/O.
//!
//! Where it knowingly differs from kube-apiserver (details in each submodule):
//! - `matchPolicy: Equivalent` is matched as `Exact`; `matchConditions` are evaluated by a
//!   CEL subset ([`cel`]) and anything outside it is an evaluation error.
//! - Validating webhooks run concurrently, as in kube-apiserver, but when several fail the
//!   first in calling order is reported (kube-apiserver reports whichever finished first).
//! - Warnings of a webhook that denies the request are lost with the error (the error type
//!   has no room for them); kube-apiserver still sends them as `Warning:` headers.
//! - No in-tree admission plugins run between rounds, and no audit annotations are kept; the
//!   object is not re-defaulted between two mutating webhooks (the API server defaults it
//!   once the mutating phase is over).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::resources::ResourceKind;
use super::status::ApiError;

pub mod cel;
pub mod client;
pub mod config;
pub mod matching;
pub mod review;

use config::{FailurePolicy, SideEffects, Webhook};
use review::{CallError, HookFailure, Verdict};

/// The authenticated user, as it appears in `request.userInfo`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// `admin`, `system:serviceaccount:sluice-system:sluice`.
    pub username: String,
    /// Omitted from the review when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// Omitted from the review when empty.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

impl Operation {
    /// The name the review and webhook rules use.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }
}

/// Everything the server knows about one write that admission needs.
#[derive(Clone, Debug)]
pub struct AdmissionAttributes {
    /// The resource addressed (for `deployments/scale`, the Deployment's kind entry).
    pub kind: ResourceKind,
    /// `scale`, `status`, or `None` for the main resource.
    pub sub_resource: Option<String>,
    /// The object's own kind when it differs from `kind.kind` (for `scale`:
    /// `("autoscaling", "v1", "Scale")`).
    pub object_kind: Option<(String, String, String)>,
    pub operation: Operation,
    /// The object's name; empty for a create by `generateName` before it is given one.
    pub name: String,
    /// `None` for cluster-scoped objects; the Namespace's own name for a Namespace.
    pub namespace: Option<String>,
    pub user: UserInfo,
    /// `dryRun=All`: webhooks with side effects refuse the request.
    pub dry_run: bool,
    /// `CreateOptions`, `UpdateOptions`, `PatchOptions` or `DeleteOptions` as sent.
    pub options: Option<Value>,
    /// The new object (`None` for DELETE).
    pub object: Option<Value>,
    /// The stored object (`None` for CREATE).
    pub old_object: Option<Value>,
    /// Labels of the object's Namespace (or of the Namespace itself), for `namespaceSelector`.
    pub namespace_labels: BTreeMap<String, String>,
}

/// A `service` clientConfig reference: namespace, name and port.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServiceRef {
    pub namespace: String,
    pub name: String,
    /// The service port, 443 unless the configuration says otherwise.
    pub port: u16,
}

/// Resolves a webhook's `service` reference to a local address.
pub type ServiceResolver = Arc<dyn Fn(&ServiceRef) -> Option<SocketAddr> + Send + Sync>;

/// The outcome of the mutating phase: the (possibly patched) object and webhook warnings.
#[derive(Clone, Debug, Default)]
pub struct Admitted {
    /// The object after every mutating webhook's patch.
    pub object: Option<Value>,
    /// Webhook warnings, once each, in the order they came.
    pub warnings: Vec<String>,
}

/// Calls registered webhooks. Holds the HTTPS clients (one per `caBundle`), so keep one
/// `Admitter` for the server's lifetime.
pub struct Admitter {
    resolver: ServiceResolver,
    clients: client::Clients,
}

const MUTATING: &str = "MutatingWebhookConfiguration";
const VALIDATING: &str = "ValidatingWebhookConfiguration";

fn unreadable(err: config::ConfigError) -> ApiError {
    ApiError::internal(err.to_string())
}

/// Appends `new` warnings not already present, as kube-apiserver's warning recorder does.
fn add_warnings(into: &mut Vec<String>, new: Vec<String>) {
    for w in new {
        if !into.contains(&w) {
            into.push(w);
        }
    }
}

impl Admitter {
    /// An admitter that finds `service` webhooks through `resolver`.
    pub fn new(resolver: ServiceResolver) -> Self {
        crate::tls::install_crypto_provider();
        Self {
            resolver,
            clients: client::Clients::default(),
        }
    }

    /// Calls one webhook with the request as it stands (`object` mutated so far).
    async fn call(
        &self,
        hook: &Webhook,
        attrs: &AdmissionAttributes,
        object: Option<&Value>,
        mutating: bool,
    ) -> Result<Verdict, HookFailure> {
        if attrs.dry_run {
            match &hook.side_effects {
                SideEffects::SafeForDryRun => {}
                SideEffects::Unset => return Err(HookFailure::Calling(CallError::SideEffectsNil)),
                SideEffects::Unsafe(_) => {
                    return Err(HookFailure::Rejected(review::dry_run_unsupported(
                        &hook.name,
                    )));
                }
            }
        }
        let api_version = review::review_version(&hook.admission_review_versions)
            .ok_or(HookFailure::Calling(CallError::NoReviewVersion))?;
        let uid = uuid::Uuid::new_v4().to_string();
        let body = review::build_review(api_version, &uid, attrs, object);
        let body = serde_json::to_vec(&body).map_err(|e| {
            HookFailure::Rejected(ApiError::internal(format!(
                "encoding the AdmissionReview for webhook {:?}: {e}",
                hook.name
            )))
        })?;
        let target = client::target(&hook.client_config, hook.timeout_seconds)
            .map_err(HookFailure::Calling)?;
        let answer = client::post(
            &self.clients,
            &self.resolver,
            &hook.client_config,
            &target,
            hook.timeout_seconds,
            body,
        )
        .await
        .map_err(HookFailure::Calling)?;
        review::read_response(api_version, &uid, mutating, &answer).map_err(HookFailure::Calling)
    }

    /// Runs the mutating webhooks of `configs` (MutatingWebhookConfiguration objects) in order:
    /// configurations by name, webhooks as listed; then, once, the `reinvocationPolicy:
    /// IfNeeded` webhooks that a later webhook's change has made stale.
    pub async fn mutate(
        &self,
        configs: &[Value],
        attrs: &AdmissionAttributes,
    ) -> Result<Admitted, ApiError> {
        let mut object = attrs.object.clone();
        let mut warnings = Vec::new();
        if configs.is_empty() {
            return Ok(Admitted { object, warnings });
        }
        let hooks = config::webhooks(MUTATING, configs).map_err(unreadable)?;
        let mut rounds = Reinvocation::default();
        for round in 0..2 {
            if round == 1 && rounds.to_reinvoke.is_empty() {
                break;
            }
            for hook in &hooks {
                if !matching::should_call(hook, attrs, object.as_ref())? {
                    continue;
                }
                if round == 1 && !rounds.to_reinvoke.contains(&hook.id) {
                    continue;
                }
                let outcome = match self.call(hook, attrs, object.as_ref(), true).await {
                    Ok(verdict) => {
                        add_warnings(&mut warnings, verdict.warnings.clone());
                        if verdict.allowed {
                            review::apply_patch(&hook.name, &verdict, &mut object)
                        } else {
                            Err(HookFailure::Rejected(review::denial(
                                &hook.name,
                                verdict.status.as_ref(),
                            )))
                        }
                    }
                    Err(failure) => Err(failure),
                };
                if outcome == Ok(true) {
                    rounds.changed();
                }
                if hook.reinvoke_if_needed {
                    rounds.invoked(&hook.id);
                }
                match outcome {
                    Ok(_) => {}
                    Err(HookFailure::Calling(err)) => {
                        fail_or_ignore(hook, &err)?;
                    }
                    Err(HookFailure::Rejected(err)) => return Err(err),
                }
            }
        }
        Ok(Admitted { object, warnings })
    }

    /// Runs the validating webhooks of `configs` (ValidatingWebhookConfiguration objects).
    /// Every matching webhook is called concurrently; the first error in calling order is
    /// returned, else the warnings of all.
    pub async fn validate(
        &self,
        configs: &[Value],
        attrs: &AdmissionAttributes,
    ) -> Result<Vec<String>, ApiError> {
        if configs.is_empty() {
            return Ok(Vec::new());
        }
        let hooks = config::webhooks(VALIDATING, configs).map_err(unreadable)?;
        let mut relevant = Vec::new();
        for hook in &hooks {
            if matching::should_call(hook, attrs, attrs.object.as_ref())? {
                relevant.push(hook);
            }
        }
        let calls = relevant
            .iter()
            .map(|hook| self.call(hook, attrs, attrs.object.as_ref(), false));
        let results = futures::future::join_all(calls).await;
        let mut warnings = Vec::new();
        let mut first_error = None;
        for (hook, result) in relevant.iter().zip(results) {
            let err = match result {
                Ok(verdict) => {
                    add_warnings(&mut warnings, verdict.warnings);
                    if verdict.allowed {
                        continue;
                    }
                    review::denial(&hook.name, verdict.status.as_ref())
                }
                Err(HookFailure::Calling(err)) => match fail_or_ignore(hook, &err) {
                    Ok(()) => continue,
                    Err(e) => e,
                },
                Err(HookFailure::Rejected(err)) => err,
            };
            first_error.get_or_insert(err);
        }
        match first_error {
            Some(err) => Err(err),
            None => Ok(warnings),
        }
    }
}

/// `failurePolicy`: `Fail` turns a failed call into a 500, `Ignore` logs it and goes on.
fn fail_or_ignore(hook: &Webhook, err: &CallError) -> Result<(), ApiError> {
    match hook.failure_policy {
        FailurePolicy::Fail => {
            tracing::warn!(webhook = %hook.name, error = %err, "failed calling webhook, failing closed");
            Err(review::call_failed(&hook.name, err))
        }
        FailurePolicy::Ignore => {
            tracing::warn!(webhook = %hook.name, error = %err, "failed calling webhook, failing open");
            Ok(())
        }
    }
}

/// kube-apiserver's reinvocation bookkeeping: an `IfNeeded` webhook is called again when a
/// webhook after it changed the object.
#[derive(Debug, Default)]
struct Reinvocation {
    /// `IfNeeded` webhooks called since the last change.
    invoked_since_change: Vec<String>,
    /// Webhooks to call in the second round.
    to_reinvoke: Vec<String>,
}

impl Reinvocation {
    fn changed(&mut self) {
        self.to_reinvoke.append(&mut self.invoked_since_change);
    }

    fn invoked(&mut self, id: &str) {
        if !self.invoked_since_change.iter().any(|i| i == id) {
            self.invoked_since_change.push(id.to_string());
        }
    }
}

/// A test request: `operation` on the `{group}/v1` resource `plural`, for `podinfo` in `shop`,
/// by `admin`, with no object, options or namespace labels. Tests set what they need over it.
#[cfg(test)]
pub(crate) fn mk_attrs(group: &str, plural: &str, operation: Operation) -> AdmissionAttributes {
    let kinds = super::resources::builtin_kinds();
    AdmissionAttributes {
        kind: super::resources::lookup(&kinds, group, "v1", plural)
            .unwrap()
            .clone(),
        sub_resource: None,
        object_kind: None,
        operation,
        name: "podinfo".into(),
        namespace: Some("shop".into()),
        user: UserInfo {
            username: "admin".into(),
            uid: String::new(),
            groups: vec![],
        },
        dry_run: false,
        options: None,
        object: None,
        old_object: None,
        namespace_labels: BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_is_reinvoked_only_for_changes_made_after_it() {
        let mut r = Reinvocation::default();
        // a (IfNeeded) changes the object itself: nothing to reinvoke yet.
        r.changed();
        r.invoked("c/0");
        assert!(r.to_reinvoke.is_empty());
        // b changes it afterwards: a is now stale.
        r.changed();
        assert_eq!(r.to_reinvoke, ["c/0"]);
        // c (IfNeeded) runs after the last change: not reinvoked.
        r.invoked("c/2");
        assert_eq!(r.to_reinvoke, ["c/0"]);
    }

    #[test]
    fn its_futures_can_be_spawned_by_the_api_server() {
        fn spawnable<F: std::future::Future + Send>(_: F) {}
        let attrs = mk_attrs("", "namespaces", Operation::Create);
        let admitter = Admitter::new(Arc::new(|_: &ServiceRef| None));
        spawnable(admitter.mutate(&[], &attrs));
        spawnable(admitter.validate(&[], &attrs));
    }

    #[test]
    fn warnings_are_kept_once_in_order() {
        let mut w = vec!["a".to_string()];
        add_warnings(&mut w, vec!["b".into(), "a".into(), "b".into()]);
        assert_eq!(w, ["a", "b"]);
    }
}
