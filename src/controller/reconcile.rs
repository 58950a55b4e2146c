//! The reconciler: observe → decide → act for one managed Deployment, driven by kube-runtime's
//! `Controller` (watch events on Deployments and the objects Sluice generates, plus the requeue
//! the state machine asks for). No per-Deployment polling loop.
//!
//! ```text
//! watch event / requeue ──► observe (objects, caches) ──► machine::decide ──► write status
//!                                 ▲ analysis when due (Prometheus)              │ then metrics
//!                                 └──────────── Events on the Deployment ◄──────┘ then effects
//! ```
//!
//! Metrics are recorded from the status once it is on the object: phase and weight on every
//! pass (so a restarted controller reports every rollout at once), the judged verdicts and a
//! finished rollout's duration only with the write that records them, so a write that fails
//! and is redone counts nothing twice. A Deployment that is no longer managed loses its series
//! here; [`run`](super::run) drops those of a deleted one.
//!
//! Analysis, when due ([`machine::analysis_plan`]): the built-in checks, the baseline comparison
//! (`baseline: on`, canary against `app-primary`; only when the built-in checks pass, as it can
//! change nothing otherwise) and the custom checks, all at one instant so they judge one window,
//! and the hooks that are due, concurrently; their answers are inputs to
//! the machine. After the status is written: the Events, an `event` hook call per Event, and
//! the alerts they call for ([`notify`], cluster `notify`), both in the background.
//!
//! Control annotations (`sluice.dev/pause`, `promote`, ...) are read into the observation; the
//! machine's answer is in the status it returns, and each annotation is removed by the
//! `ClearControl` effect only after that status is written, so an answer is never lost.
//!
//! The route is re-asserted on every pass while a rollout runs (compared with the cached route,
//! then by the router before it writes), so a person's edit or deletion of it is undone as soon
//! as its watch event arrives.
//!
//! At rest a reconcile makes no API request: the apex Service, the generated Services, the
//! route and the absence of `app-primary` are read from the controller's caches ([`seen`]),
//! and a write whose content is already there (Services, route, status, DELETE of an absent
//! primary) is not made. A stale cache costs one extra idempotent read or write, never a
//! missed one: the watch event that makes it current reconciles again. While a rollout runs
//! (or starts or ends in this pass) the route is read and compared on the API server: a cache
//! lagging behind Sluice's own last route write could otherwise hide the next one for as long
//! as the watch event takes, and traffic would follow the old weight meanwhile. The apex and
//! `app-primary` come from the caches when the cached copy is at the version this process last
//! wrote or read ([`seen::Known`]), and the HPAs from theirs; so a steady pass inside a rollout
//! reads only the route, and writes only what changed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PodTemplateSpec, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType as KubeEventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};
use tracing::Instrument as _;

use super::machine::{self, Controls, Effect, EventType, Observation, Plan, Readiness};
use super::notify;
use super::objects;
use super::retry::Retries;
use super::seen::{self, KnownKind, Seen};
use super::status::{CheckVerdict, Phase, RolloutStatus};
use crate::analysis::checks::baseline::{BaselinePlan, run_baseline_at};
use crate::analysis::checks::{self, CheckPlan, IntervalOutcome};
use crate::analysis::hooks::{self, HookAnswers};
use crate::analysis::prometheus::PromClient;
use crate::metrics::{self, Metrics};
use crate::policy::keys::{PHASE_LABEL, STABLE_TEMPLATE_ANNOTATION, STATUS_ANNOTATION};
use crate::policy::optin;
use crate::policy::settings::{self, Layers, Settings};
use crate::policy::values::HookType;
use crate::routing::{AnyRouter, RoutingError};
use crate::webhook::revision::revision;

/// Field manager of every write Sluice makes.
pub const FIELD_MANAGER: &str = "sluice";

/// Errors of one reconcile; each requeues with a short backoff and is logged with the object.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action} {object}: {}", kube_message(.source))]
    Kube {
        action: &'static str,
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error("{0}")]
    Objects(#[from] objects::ObjectsError),
    #[error("{0}")]
    Routing(#[from] RoutingError),
    #[error(
        "annotation {STABLE_TEMPLATE_ANNOTATION} on {object} is not a pod template: {reason}; Sluice writes it on intercept, so re-apply the Deployment"
    )]
    StableTemplate { object: String, reason: String },
}

/// The API server's own message for API errors (the Status), the error itself otherwise.
fn kube_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        other => other.to_string(),
    }
}

impl Error {
    /// Whether another writer changed the object first: retry at once, nothing is wrong.
    /// How long the API server asked to wait (a 429's `Retry-After`), if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Kube {
                source: kube::Error::Api(s),
                ..
            } => s
                .details
                .as_ref()
                .map(|d| Duration::from_secs(d.retry_after_seconds.into()))
                .filter(|d| !d.is_zero()),
            _ => None,
        }
    }

    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Kube { source: kube::Error::Api(s), .. } if s.code == 409)
    }

    /// A short label for metrics (`conflict` for a lost optimistic-concurrency race, which is
    /// retried at once and is no fault).
    pub fn metric_label(&self) -> &'static str {
        match self {
            _ if self.is_conflict() => "conflict",
            Error::Kube { .. } => "kube",
            Error::Objects(_) => "objects",
            Error::Routing(e) => e.metric_label(),
            Error::StableTemplate { .. } => "stable_template",
        }
    }
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub prom: PromClient,
    pub router: AnyRouter,
    /// Namespaces, for the opt-in label and namespace-level policy.
    pub namespaces: Store<Namespace>,
    /// ConfigMaps in Sluice's namespace, for the cluster policy `sluice-policy`.
    pub policy: Store<ConfigMap>,
    pub sluice_namespace: String,
    pub reporter: Reporter,
    /// Where rollout phases, weights, verdicts, durations and errors are recorded.
    pub metrics: Metrics,
    /// Consecutive failures per Deployment, for the retry delay.
    pub retries: Retries,
}

fn kube_err(action: &'static str, object: String) -> impl FnOnce(kube::Error) -> Error {
    move |source| Error::Kube {
        action,
        object,
        source,
    }
}

/// Readiness of a Deployment at its current template, as `kubectl rollout status` judges it.
pub fn readiness(d: &Deployment) -> Readiness {
    let (Some(spec), Some(status)) = (&d.spec, &d.status) else {
        return Readiness::Progressing;
    };
    if let Some(c) = status.conditions.iter().flatten().find(|c| {
        c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    }) {
        return Readiness::Failed(
            c.message
                .clone()
                .unwrap_or_else(|| "progress deadline exceeded".into()),
        );
    }
    let want = spec.replicas.unwrap_or(1);
    let current = status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
    if !spec.paused.unwrap_or(false)
        && current
        && status.updated_replicas.unwrap_or(0) == want
        && status.available_replicas.unwrap_or(0) == want
        && status.replicas.unwrap_or(0) == want
    {
        Readiness::Ready
    } else {
        Readiness::Progressing
    }
}

/// The plan the state machine needs, from resolved settings.
pub fn plan(s: &Settings) -> Plan {
    Plan {
        interval: s.interval,
        weights: s.steps.weights(s.max_weight),
        threshold: s.threshold,
        progress_deadline: s.progress_deadline,
        hooks: s.webhooks.iter().map(|h| h.kind).collect(),
        strategy: s.strategy,
        iterations: s.iterations,
    }
}

fn template_value(t: &PodTemplateSpec) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

/// Runs the checks of one analysis interval: built-in, baseline (`baseline: on`) and custom, all
/// at one instant so they judge one window. Never fails: every problem is a verdict.
/// `compare` is false while the primary takes no live traffic ([`machine::AnalysisPlan`]).
async fn analyse(
    ctx: &Context,
    ns: &str,
    name: &str,
    settings: &Settings,
    compare: bool,
) -> Vec<CheckVerdict> {
    let check_plan = CheckPlan {
        namespace: ns.to_string(),
        canary: name.to_string(),
        primary: objects::primary_name(name),
        interval: settings.interval,
        success_rate_min: settings.success_rate,
        latency_p99_max: settings.latency_p99,
        min_requests: settings.min_requests,
    };
    let baseline_plan = BaselinePlan {
        tolerance_points: settings.baseline_tolerance,
        latency_ratio: settings.baseline_latency_ratio,
    };
    let at = SystemTime::now();
    let (mut verdicts, custom) = tokio::join!(
        checks::run_builtin_at(&ctx.prom, &check_plan, at),
        checks::custom::run_custom_at(&ctx.prom, &check_plan, &settings.metrics, at),
    );
    // The baseline can only turn a passing interval into a failing one: when the built-in
    // checks fail or see too little traffic (the same min-requests gate), its six queries
    // would change nothing, so they are not sent.
    if settings.baseline && compare && checks::outcome(&verdicts) == IntervalOutcome::Passed {
        verdicts.extend(run_baseline_at(&ctx.prom, &check_plan, &baseline_plan, at).await);
    }
    verdicts.extend(custom);
    verdicts
}

/// What the controller's reconciles share while this process leads: the [`Context`] and the
/// caches the controller's watches fill.
pub struct Leading {
    pub ctx: Arc<Context>,
    pub seen: Seen,
}

/// Reconciles one Deployment.
pub async fn reconcile(app: Arc<Deployment>, leading: Arc<Leading>) -> Result<Action, Error> {
    // Every log line of this pass carries the rollout's namespace, name and revision.
    let span = tracing::info_span!(
        "rollout",
        namespace = %app.namespace().unwrap_or_default(),
        // Not `name`: JSON logs give the span's own name under that key.
        deployment = %app.name_any(),
        revision = tracing::field::Empty,
    );
    leading.ctx.metrics.reconcile();
    reconcile_one(app, &leading.ctx, &leading.seen)
        .instrument(span)
        .await
}

async fn reconcile_one(app: Arc<Deployment>, ctx: &Context, seen: &Seen) -> Result<Action, Error> {
    let ns = app.namespace().unwrap_or_default();
    let name = app.name_any();
    let key = format!("{ns}/{name}");
    let namespace = ctx.namespaces.get(&ObjectRef::new(&ns));
    let empty = BTreeMap::new();
    let ns_labels = namespace.as_ref().map(|n| n.labels()).unwrap_or(&empty);
    if !optin::managed(app.labels(), ns_labels).is_managed() {
        ctx.metrics.forget_rollout(&ns, &name);
        return Ok(Action::await_change());
    }
    let cluster = ctx
        .policy
        .get(&ObjectRef::new("sluice-policy").within(&ctx.sluice_namespace))
        .and_then(|cm| cm.data.clone());
    let resolved = settings::resolve(&Layers {
        deployment: Some(app.annotations()),
        namespace: namespace.as_ref().map(|n| n.annotations()),
        cluster: cluster.as_ref(),
    });
    let prev = RolloutStatus::from_annotations(Some(app.annotations()))
        .ok()
        .flatten();
    let (settings, policy_problem) = match resolved {
        Ok(r) => (r.settings, None),
        Err(errors) => (
            Settings::default(),
            Some(format!(
                "invalid policy: {}",
                errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
        ),
    };
    let plan = plan(&settings);

    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &ns);
    let apex_name = settings.service.clone().unwrap_or_else(|| name.clone());
    seen.apexes.note(&ns, &name, &apex_name);
    // At rest from the caches where they can answer (see `seen`), else from the API server.
    let resting = seen::at_rest(prev.as_ref().map(|s| s.phase));
    let cached_apex = seen.service(&ns, &apex_name);
    let apex = match seen.answers(cached_apex, KnownKind::Apex, resting) {
        Some(cached) => Some(Service::clone(&cached)),
        None => {
            let (action, kind) = ("reading Service", KnownKind::Apex);
            read_known(&services, seen, kind, action, &apex_name).await?
        }
    };
    let primary_name = objects::primary_name(&name);
    let cached_primary = seen.primary(&ns, &primary_name);
    let primary = match seen.answers(cached_primary, KnownKind::Primary, false) {
        Some(cached) => Some(Deployment::clone(&cached)),
        None if seen::trust_absent_primary(
            prev.as_ref().map(|s| s.phase),
            seen.primary_absent(&ns, &primary_name),
        ) =>
        {
            None
        }
        None => {
            let (action, kind) = ("reading Deployment", KnownKind::Primary);
            read_known(&deployments, seen, kind, action, &primary_name).await?
        }
    };

    let template = app
        .spec
        .as_ref()
        .map(|s| template_value(&s.template))
        .unwrap_or(Value::Null);
    let stable_template: Option<PodTemplateSpec> =
        match app.annotations().get(STABLE_TEMPLATE_ANNOTATION) {
            Some(raw) => Some(
                serde_json::from_str(raw).map_err(|e| Error::StableTemplate {
                    object: key.clone(),
                    reason: e.to_string(),
                })?,
            ),
            None => None,
        };
    let blocked = match policy_problem.or_else(|| {
        apex.is_none().then(|| {
            format!(
                "the apex Service {ns}/{apex_name} does not exist; create it (Sluice splits its traffic) or name another with sluice.dev/service"
            )
        })
    }) {
        Some(problem) => Some(problem),
        None => {
            let ingress = settings.ingress_name(&name);
            ctx.router
                .problem(settings.router, &ns, ingress, &apex_name)
                .await?
        }
    };
    let obs = Observation {
        now: SystemTime::now(),
        revision: {
            let r = revision(&template);
            tracing::Span::current().record("revision", &r[..r.len().min(10)]);
            r
        },
        stable_revision: stable_template
            .as_ref()
            .map(|t| revision(&template_value(t))),
        paused: app.spec.as_ref().and_then(|s| s.paused).unwrap_or(false),
        app: readiness(&app),
        primary: primary.as_ref().map(readiness),
        controls: Controls::from_annotations(app.annotations()),
        blocked,
        hooks: HookAnswers::default(),
    };

    let revision = obs.revision.clone();
    let hook_target = |phase| hooks::Target {
        namespace: ns.clone(),
        name: name.clone(),
        phase,
        checksum: revision.clone(),
    };
    let mut obs = obs;
    let verdicts = match machine::analysis_plan(prev.as_ref(), &obs, &plan) {
        Some(due) => {
            let target = hook_target(prev.as_ref().map_or(Phase::Progressing, |s| s.phase));
            let (mut verdicts, answers) = tokio::join!(
                async {
                    match due.checks {
                        true => analyse(ctx, &ns, &name, &settings, due.baseline).await,
                        false => Vec::new(),
                    }
                },
                hooks::call_all(&settings.webhooks, &due.hooks, &target),
            );
            let (hook_verdicts, gates) = hooks::fold(&answers);
            verdicts.extend(hook_verdicts);
            obs.hooks = gates;
            Some(verdicts)
        }
        None => None,
    };
    let decision = machine::decide(prev.as_ref(), &obs, &plan, verdicts.as_deref());

    let mut writer = AppWriter {
        api: &deployments,
        name: name.clone(),
        resource_version: app.resource_version(),
    };
    // 1. Intent first: the status, so a crash after this point redoes the effects.
    if prev.as_ref() != Some(&decision.status) {
        let patch = json!({
            "metadata": {
                "labels": { PHASE_LABEL: decision.status.phase.as_str() },
                "annotations": { STATUS_ANNOTATION: decision.status.to_annotation() },
            }
        });
        writer
            .merge("writing the status of Deployment", patch)
            .await?;
        ctx.metrics.checks(metrics::judged(
            verdicts.as_deref(),
            &decision.status,
            obs.now,
        ));
        if let Some((outcome, took)) =
            metrics::rollout_end(prev.as_ref(), &decision.status, obs.now)
        {
            ctx.metrics.rollout_ended(outcome, took);
        }
    }
    ctx.metrics.record_rollout(&ns, &name, &decision.status);
    // 2. Events, worded for a person, as soon as the decision is committed: effects that fail
    //    below are redone by the next pass, which has nothing new to announce.
    let recorder = Recorder::new(ctx.client.clone(), ctx.reporter.clone());
    let reference = app.object_ref(&());
    for e in &decision.events {
        let event = KubeEvent {
            type_: match e.kind {
                EventType::Normal => KubeEventType::Normal,
                EventType::Warning => KubeEventType::Warning,
            },
            reason: e.reason.into(),
            note: Some(e.message.clone()),
            action: "Rollout".into(),
            secondary: None,
        };
        if let Err(err) = recorder.publish(&event, &reference).await {
            tracing::warn!(deployment = %key, "publishing event {}: {err}", e.reason);
        }
        tracing::info!(deployment = %key, reason = e.reason, "{}", e.message);
        let note = hooks::EventNote {
            kind: e.kind.as_str(),
            message: e.message.clone(),
            at: obs.now,
        };
        let target = hook_target(decision.status.phase);
        hooks::notify_in_background(&settings.webhooks, HookType::Event, &target, Some(&note));
    }
    notify::send_in_background(
        &settings.notify,
        notify::alerts(
            notify::Subject {
                namespace: &ns,
                name: &name,
            },
            &decision.status,
            &decision.events,
        ),
    );
    // 3. Effects, in order; stop at the first error (the next pass redoes them).
    if let Some(apex) = &apex {
        let target = objects::route_target(&app, apex, settings.router)?
            .with_ingress(settings.ingress_name(&name))
            .with_matches(&settings.matches);
        let mut primary_exists = primary.is_some();
        // The route is compared with the caches only between two statuses at rest: in a rollout
        // a cache lagging behind Sluice's own last route write could hide a write that is due.
        // (The generated Services and app-primary carry no weight: compared in every phase.)
        let between_rests = resting && seen::at_rest(Some(decision.status.phase));
        for effect in &decision.effects {
            if *effect == Effect::PostRolloutHooks {
                // About the revision that was rolled out, promoted or refused.
                let s = &decision.status;
                let rolled = match s.phase {
                    Phase::Failed => s.failed_revision.clone(),
                    _ => s.revision.clone(),
                };
                let target = hooks::Target {
                    checksum: rolled.unwrap_or_else(|| obs.revision.clone()),
                    ..hook_target(s.phase)
                };
                hooks::notify_in_background(
                    &settings.webhooks,
                    HookType::PostRollout,
                    &target,
                    None,
                );
                continue;
            }
            perform(
                effect,
                ctx,
                seen,
                between_rests,
                &app,
                apex,
                &target,
                stable_template.as_ref(),
                &deployments,
                &services,
                &mut writer,
                &mut primary_exists,
            )
            .await?;
        }
    }
    ctx.retries.succeeded(&key);
    Ok(match decision.requeue {
        Some(d) => Action::requeue(d.max(Duration::from_millis(200))),
        None => Action::await_change(),
    })
}

/// Writes to the user's Deployment under optimistic concurrency: every write carries the
/// resourceVersion Sluice last saw, so an update that lands in between (a new revision the
/// webhook just paused) makes the write fail with 409 and the reconcile start over from the new
/// object, instead of unpausing or clearing what it never saw.
struct AppWriter<'a> {
    api: &'a Api<Deployment>,
    name: String,
    resource_version: Option<String>,
}

impl AppWriter<'_> {
    async fn merge(&mut self, action: &'static str, mut patch: Value) -> Result<(), Error> {
        patch["metadata"]["resourceVersion"] = json!(self.resource_version);
        let written = self
            .api
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(kube_err(action, self.name.clone()))?;
        self.resource_version = written.resource_version();
        Ok(())
    }

    async fn json(&mut self, action: &'static str, ops: Value) -> Result<(), Error> {
        // `replace`, not `test`: the API server checks the resourceVersion the patched object
        // carries and answers a stale one with 409 Conflict, while a failed `test` is a bare
        // 422 that cannot be told apart from an invalid patch.
        let mut all = vec![
            json!({ "op": "replace", "path": "/metadata/resourceVersion", "value": self.resource_version }),
        ];
        all.extend(ops.as_array().cloned().unwrap_or_default());
        let patch: json_patch::Patch =
            serde_json::from_value(Value::Array(all)).expect("a JSON patch built here");
        let written = self
            .api
            .patch(
                &self.name,
                &PatchParams::default(),
                &Patch::<()>::Json(patch),
            )
            .await
            .map_err(kube_err(action, self.name.clone()))?;
        self.resource_version = written.resource_version();
        Ok(())
    }
}

/// `name` from the API server; its version (or its absence) becomes the one known (seen.rs).
async fn read_known<K>(
    api: &Api<K>,
    seen: &Seen,
    kind: KnownKind,
    action: &'static str,
    name: &str,
) -> Result<Option<K>, Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let ns = api.namespace().unwrap_or_default().to_string();
    let read = api
        .get_opt(name)
        .await
        .map_err(kube_err(action, format!("{ns}/{name}")))?;
    match &read {
        Some(obj) => seen.known.saw(kind, obj),
        None => seen.known.record(kind, &ns, name, None),
    }
    Ok(read)
}

/// A JSON merge patch of one object, with the error naming the action and the object; returns
/// the object as written.
async fn merge<K>(api: &Api<K>, name: &str, action: &'static str, patch: &Value) -> Result<K, Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map_err(kube_err(action, name.to_string()))
}

#[allow(clippy::too_many_arguments)]
async fn perform(
    effect: &Effect,
    ctx: &Context,
    seen: &Seen,
    between_rests: bool,
    app: &Deployment,
    apex: &Service,
    target: &crate::routing::RouteTarget,
    stable: Option<&PodTemplateSpec>,
    deployments: &Api<Deployment>,
    services: &Api<Service>,
    writer: &mut AppWriter<'_>,
    primary_exists: &mut bool,
) -> Result<(), Error> {
    let ns = app.namespace().unwrap_or_default();
    let name = app.name_any();
    let ssa = PatchParams::apply(FIELD_MANAGER).force();
    match effect {
        Effect::EnsureServices => {
            for svc in [
                objects::primary_service(app, apex)?,
                objects::canary_service(app, apex)?,
            ] {
                let svc_name = svc.name_any();
                // In every phase, not only at rest: these Services carry no weight, so a cache
                // behind Sluice's own write costs one extra apply, and a change behind the cache
                // wakes this Deployment again (seen.rs).
                if seen::is_current(seen.service(&ns, &svc_name).as_deref(), &svc) {
                    continue;
                }
                services
                    .patch(&svc_name, &ssa, &Patch::Apply(&svc))
                    .await
                    .map_err(kube_err("applying Service", format!("{ns}/{svc_name}")))?;
            }
        }
        Effect::EnsureRoute(split) => {
            // The caches hold weighted routes only (at rest); an A/B route is always compared
            // by the router itself.
            let current = match split.weights() {
                Some(w) => between_rests && seen.route_is_current(target, w),
                None => false,
            };
            if !current {
                ctx.router.ensure(target, *split).await?;
            }
        }
        Effect::EnsurePrimary => {
            let Some(stable) = stable else { return Ok(()) };
            let mut primary = objects::primary_deployment(app, stable)?;
            // An HPA on app: app-primary gets a copy, which owns its replicas (objects.rs). The
            // HPAs come from the cache (seen.rs), listed only until it has synced.
            let hpas = Api::<HorizontalPodAutoscaler>::namespaced(ctx.client.clone(), &ns);
            let listed = match seen.hpas_in(&ns) {
                Some(cached) => cached,
                None => {
                    let listed = hpas.list(&ListParams::default()).await;
                    let listed = listed
                        .map_err(kube_err("listing HorizontalPodAutoscalers in", ns.clone()))?;
                    listed.items.into_iter().map(Arc::new).collect()
                }
            };
            let copy = match objects::app_hpa(listed.iter().map(Arc::as_ref), app) {
                Some(hpa) => {
                    let current = deployments.get_opt(&primary.name_any()).await;
                    let current = current.map_err(kube_err(
                        "reading Deployment",
                        format!("{ns}/{name}-primary"),
                    ))?;
                    if let Some(current) = &current {
                        seen.known.saw(KnownKind::Primary, current);
                    }
                    objects::leave_replicas_to_hpa(&mut primary, app, hpa, current.as_ref());
                    Some(objects::primary_hpa(app, hpa)?)
                }
                None => None,
            };
            // Without an HPA copy its replicas follow app's, so the cached primary can answer
            // (seen.rs); with one, the replicas were just read from the API server.
            let cached_primary = seen.primary(&ns, &primary.name_any());
            if copy.is_none() && seen::is_current(cached_primary.as_deref(), &primary) {
                *primary_exists = true;
                return Ok(());
            }
            let written = deployments
                .patch(&primary.name_any(), &ssa, &Patch::Apply(&primary))
                .await
                .map_err(kube_err(
                    "applying Deployment",
                    format!("{ns}/{name}-primary"),
                ))?;
            seen.known.saw(KnownKind::Primary, &written);
            if let Some(copy) = copy {
                hpas.patch(&copy.name_any(), &ssa, &Patch::Apply(&copy))
                    .await
                    .map_err(kube_err(
                        "applying HorizontalPodAutoscaler",
                        format!("{ns}/{name}-primary"),
                    ))?;
            }
            *primary_exists = true;
        }
        Effect::SwitchApexToPrimary => {
            if let Some(patch) = objects::apex_rollout_patch(apex, app)? {
                let written = merge(
                    services,
                    &apex.name_any(),
                    "pointing at the primary: Service",
                    &patch,
                )
                .await?;
                seen.known.saw(KnownKind::Apex, &written);
            }
        }
        Effect::RestoreApex => {
            if let Some(patch) = objects::apex_restore_patch(apex)? {
                let written = merge(
                    services,
                    &apex.name_any(),
                    "restoring the selector of Service",
                    &patch,
                )
                .await?;
                seen.known.saw(KnownKind::Apex, &written);
            }
        }
        Effect::SetPaused(paused) => {
            let now = app.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
            if now != *paused {
                let patch = json!({ "spec": { "paused": paused } });
                writer
                    .merge("setting spec.paused of Deployment", patch)
                    .await?;
            }
        }
        Effect::RestoreStableTemplate => {
            let Some(stable) = stable else { return Ok(()) };
            let current = app.spec.as_ref().map(|s| template_value(&s.template));
            let wanted = template_value(stable);
            if current.as_ref().map(revision) != Some(revision(&wanted)) {
                let ops = json!([{ "op": "replace", "path": "/spec/template", "value": wanted }]);
                writer
                    .json("restoring the stable template of Deployment", ops)
                    .await?;
            }
        }
        // Observed absent (read, or at rest from the synced cache): nothing to delete.
        Effect::DeletePrimary if !*primary_exists => {}
        Effect::DeletePrimary => {
            let hpas = Api::<HorizontalPodAutoscaler>::namespaced(ctx.client.clone(), &ns);
            let gone = |r: Result<(), kube::Error>| match r {
                Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
                r => r,
            };
            let primary = objects::primary_name(&name);
            let deleted = hpas.delete(&primary, &DeleteParams::background()).await;
            gone(deleted.map(drop)).map_err(kube_err(
                "deleting HorizontalPodAutoscaler",
                format!("{ns}/{primary}"),
            ))?;
            let deleted = deployments
                .delete(&primary, &DeleteParams::background())
                .await;
            gone(deleted.map(drop))
                .map_err(kube_err("deleting Deployment", format!("{ns}/{primary}")))?;
            seen.known.record(KnownKind::Primary, &ns, &primary, None);
        }
        Effect::ClearStableTemplate => {
            remove_annotation(writer, app, STABLE_TEMPLATE_ANNOTATION).await?
        }
        Effect::ClearControl(verb) => remove_annotation(writer, app, &verb.annotation()).await?,
        // Called by the reconcile loop, which knows the hooks and the finished revision.
        Effect::PostRolloutHooks => {}
    }
    Ok(())
}

async fn remove_annotation(
    writer: &mut AppWriter<'_>,
    app: &Deployment,
    key: &str,
) -> Result<(), Error> {
    if !app.annotations().contains_key(key) {
        return Ok(());
    }
    let patch = json!({ "metadata": { "annotations": { key: null } } });
    writer
        .merge("removing an annotation from Deployment", patch)
        .await
}

/// Requeue after an error: soon, with the error logged against the object.
pub fn error_policy(app: Arc<Deployment>, err: &Error, leading: Arc<Leading>) -> Action {
    let ctx = &leading.ctx;
    ctx.metrics.reconcile_error(err.metric_label());
    if err.is_conflict() {
        tracing::debug!(deployment = %app.name_any(), "{err}; retrying with the newer object");
        return Action::requeue(Duration::from_millis(50));
    }
    let key = format!("{}/{}", app.namespace().unwrap_or_default(), app.name_any());
    let delay = ctx.retries.failed(&key, err.retry_after());
    tracing::warn!(
        deployment = %key,
        reason = err.metric_label(),
        retry_in = ?delay,
        "{err}"
    );
    Action::requeue(delay)
}

#[cfg(test)]
mod tests {
    use kube::core::Status;

    use super::*;

    fn api_error(code: u16) -> Error {
        Error::Kube {
            action: "writing the status of Deployment",
            object: "shop/web".into(),
            source: kube::Error::Api(Status::failure("nope", "Reason").with_code(code).boxed()),
        }
    }

    #[test]
    fn a_lost_write_race_is_counted_as_a_conflict_and_other_api_errors_as_kube() {
        assert_eq!(api_error(409).metric_label(), "conflict");
        assert_eq!(api_error(500).metric_label(), "kube");
        assert_eq!(
            Error::Routing(RoutingError::NotServed {
                router: crate::policy::values::RouterKind::Smi,
                route: "shop/web".into()
            })
            .metric_label(),
            "not_served"
        );
    }
}
