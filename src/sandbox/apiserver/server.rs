//! Routing, handlers and the write pipeline of the sandbox API server.
//!
//! ```text
//! request ─► auth (bearer) ─► route ─► get / list / watch ─────────────────► store
//!                                   └► create / update / patch / delete
//!                                        decode → (patch onto live) → namespace lifecycle →
//!                                        default → mutating webhooks → default →
//!                                        prepare (uid, generation, status) → validate →
//!                                        validating webhooks → field manager → persist
//!                                        (retried from the top if the object changed)
//! ```
//!
//! Differences from kube-apiserver:
//! - `/openapi/v2` is 404; `/openapi/v3` carries open schemas (see `discovery`). kubectl then
//!   computes client-side apply patches from its compiled-in types.
//! - `PUT` never creates. Webhooks see `managedFields` as they were before the write (kube
//!   updates them before admission).
//! - `generation` is tracked for kinds with a `spec` (except Services and Namespaces, which
//!   kube does not track either) and for webhook configurations (`webhooks`); Deployments also
//!   bump it on annotation changes, as kube's deployment strategy does.
//! - `/status` writes change `.status` and, as each kind's status strategy allows, metadata:
//!   nothing else for custom resources, annotations for Deployments (the deployment
//!   controller writes `deployment.kubernetes.io/revision` that way), labels and annotations
//!   for the other built-ins.
//! - List items carry `apiVersion` and `kind` (kube-apiserver leaves them out of items).
//! - `resourceVersion`/`resourceVersionMatch` on get and list are ignored: reads always see the
//!   latest state.
//! - Request counts (`ApiServer::request_counts`) count discovery and OpenAPI reads as `get`.
//! - A handler panic (a sandbox bug) is answered as a 500 `InternalError` Status.
//! - Deleting a Namespace removes its contents and the Namespace inside the request (the
//!   response still shows it `Terminating`, as kube answers).
//! - Non-resource URLs answer a 404 `Status` rather than kube's plain-text page.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::Identity;
use super::admission::{AdmissionAttributes, Admitter, Operation};
use super::fault::Faults;
use super::resources::{ResourceKind, builtin_kinds};
use super::selectors::{FieldSelector, LabelSelector, Selection};
use super::status::{ApiError, Cause};
use super::store::{self, FOREGROUND_FINALIZER, ObjKey, Store, obj_key, object_rv};
use super::{convert, discovery, table};
use super::{defaults, fieldmanager, strategic};

/// State shared by every request.
pub struct Shared {
    kinds: Vec<ResourceKind>,
    store: Mutex<Store>,
    unserved: RwLock<Vec<String>>,
    pub(super) services: Arc<RwLock<HashMap<(String, String), SocketAddr>>>,
    admitter: Admitter,
    counts: Mutex<BTreeMap<String, u64>>,
    /// The same requests by who made them: `(username, "verb resource")`.
    counts_by: Mutex<BTreeMap<(&'static str, String), u64>>,
    bookmark_interval: Duration,
    addr: SocketAddr,
    shutdown: tokio::sync::watch::Sender<bool>,
    pub(super) faults: Faults,
    /// Watches ended with 410 Expired because their client fell behind the broadcast buffer.
    watches_cut: std::sync::atomic::AtomicU64,
}

fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

impl Shared {
    pub(super) fn new(
        mut store: Store,
        admitter: Admitter,
        services: Arc<RwLock<HashMap<(String, String), SocketAddr>>>,
        bookmark_interval: Duration,
        addr: SocketAddr,
    ) -> Self {
        let ts = now();
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            store.insert(
                "/namespaces",
                json!({
                    "apiVersion": "v1", "kind": "Namespace",
                    "metadata": {
                        "name": ns, "uid": uuid::Uuid::new_v4().to_string(),
                        "creationTimestamp": ts,
                        "labels": {"kubernetes.io/metadata.name": ns},
                    },
                    "spec": {"finalizers": ["kubernetes"]},
                    "status": {"phase": "Active"},
                }),
            );
        }
        Self {
            kinds: builtin_kinds(),
            store: Mutex::new(store),
            unserved: RwLock::default(),
            services,
            admitter,
            counts: Mutex::default(),
            counts_by: Mutex::default(),
            bookmark_interval,
            addr,
            shutdown: tokio::sync::watch::channel(false).0,
            faults: Faults::default(),
            watches_cut: Default::default(),
        }
    }

    /// Watches ended so far because their client fell too far behind (see `store`).
    pub(super) fn watches_cut(&self) -> u64 {
        self.watches_cut.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The store, even if a panicking request poisoned the lock (its writes are atomic).
    pub(super) fn lock_store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn set_served(&self, group_version: &str, served: bool) {
        if let Ok(mut u) = self.unserved.write() {
            u.retain(|g| g != group_version);
            if !served {
                u.push(group_version.to_string());
            }
        }
    }

    /// Deletes the CustomResourceDefinition of `plural.group` as kube-apiserver does: its
    /// versions stop being served (leaving discovery, their URLs answer 404) and every object
    /// of it is deleted, each with a DELETED watch event. `false` when no custom resource of
    /// that name is served.
    pub(super) fn delete_crd(&self, group: &str, plural: &str) -> bool {
        let versions = self.crd_versions(group, plural);
        let Some(storage) = versions.first().map(ResourceKind::storage_key) else {
            return false;
        };
        for kind in &versions {
            self.set_served(&kind.api_version(), false);
        }
        self.purge(&storage);
        true
    }

    /// Creates the CustomResourceDefinition of `plural.group` again: every version the sandbox
    /// knows for it is served, with no objects (those of the deleted CRD are gone). `false`
    /// when the sandbox has no such custom resource.
    pub(super) fn create_crd(&self, group: &str, plural: &str) -> bool {
        let versions = self.crd_versions(group, plural);
        let Some(storage) = versions.first().map(ResourceKind::storage_key) else {
            return false;
        };
        // A write that passed the served check just before the deletion may have landed since.
        self.purge(&storage);
        for kind in &versions {
            self.set_served(&kind.api_version(), true);
        }
        true
    }

    /// Every version of custom resource `plural.group` the sandbox knows, served or not.
    fn crd_versions(&self, group: &str, plural: &str) -> Vec<ResourceKind> {
        self.kinds
            .iter()
            .filter(|k| k.group == group && k.plural == plural && is_custom_resource(k))
            .cloned()
            .collect()
    }

    /// Removes every object of storage `storage`, each with a DELETED change.
    fn purge(&self, storage: &str) {
        let mut store = self.lock_store();
        let keys: Vec<_> = store.list(storage, None).map(obj_key).collect();
        for key in keys {
            store.remove(storage, &key);
        }
    }

    pub(super) fn request_counts(&self) -> BTreeMap<String, u64> {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }

    pub(super) fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    pub(super) fn request_counts_by(&self, who: Identity) -> BTreeMap<String, u64> {
        let counts = self.counts_by.lock().map(|c| c.clone()).unwrap_or_default();
        counts
            .into_iter()
            .filter(|((user, _), _)| *user == who.username())
            .map(|((_, verb), n)| (verb, n))
            .collect()
    }

    fn count(&self, who: Identity, verb: &str, resource: &str) {
        if let Ok(mut c) = self.counts.lock() {
            *c.entry(verb.to_string()).or_default() += 1;
        }
        if let Ok(mut c) = self.counts_by.lock() {
            *c.entry((who.username(), format!("{verb} {resource}")))
                .or_default() += 1;
        }
    }

    fn served_kinds(&self) -> Vec<&ResourceKind> {
        let unserved = self.unserved.read().map(|u| u.clone()).unwrap_or_default();
        self.kinds
            .iter()
            .filter(|k| !unserved.contains(&k.api_version()))
            .collect()
    }

    fn kind(&self, group: &str, version: &str, plural: &str) -> Option<ResourceKind> {
        self.served_kinds()
            .into_iter()
            .find(|k| k.group == group && k.version == version && k.plural == plural)
            .cloned()
    }

    fn kind_by_plural(&self, group: &str, plural: &str) -> Option<ResourceKind> {
        self.kinds
            .iter()
            .find(|k| k.group == group && k.plural == plural)
            .cloned()
    }

    fn configs(&self, plural: &str) -> Vec<Value> {
        let key = format!("admissionregistration.k8s.io/{plural}");
        self.lock_store().list(&key, None).cloned().collect()
    }

    fn namespace(&self, name: &str) -> Option<Value> {
        self.lock_store()
            .get("/namespaces", &(String::new(), name.to_string()))
            .cloned()
    }
}

/// The axum router: one fallback handler that routes by path, as kube-apiserver's mux does.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

/// A Kubernetes-style JSON response.
fn respond(code: u16, body: &Value, warnings: &[String]) -> Response {
    let mut resp = (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    for w in warnings {
        let text = w.replace(['"', '\n', '\r'], "'");
        if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{text}\"")) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

fn error(e: &ApiError) -> Response {
    respond(e.code, &e.to_status(), &[])
}

fn not_found_path() -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
    .with_details(json!({}))
}

async fn handle(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    if matches!(path.as_str(), "/healthz" | "/livez" | "/readyz") {
        return (StatusCode::OK, "ok").into_response();
    }
    let who = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|t| Identity::from_token(t.trim()));
    let Some(who) = who else {
        return error(&ApiError::unauthorized());
    };
    let query: HashMap<String, String> = Query::try_from_uri(&parts.uri)
        .map(|Query(q)| q)
        .unwrap_or_default();
    let body = match axum::body::to_bytes(body, 64 * 1024 * 1024).await {
        Ok(b) => b,
        Err(e) => {
            return error(&ApiError::bad_request(format!(
                "reading the request body: {e}"
            )));
        }
    };
    if let Some(e) = s.faults.before_write(who, &parts.method) {
        return error(&e);
    }
    let watch =
        query.get("watch").is_some_and(|v| v == "true" || v == "1") || path.contains("/watch/");
    let (delay, injected) = s.faults.draw(who, &parts.method, watch, fastrand::f64());
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some(e) = injected {
        let mut resp = error(&e);
        if e.code == 429 {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        return resp;
    }
    let watching = s.faults.watching(who, &parts.method);
    let segs: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let ctx = Ctx {
        who,
        method: parts.method.clone(),
        headers: parts.headers,
        query,
        body,
    };
    // A panic is a sandbox bug; answer it as kube-apiserver answers its own: a 500 Status.
    match AssertUnwindSafe(route(&s, &ctx, &segs))
        .catch_unwind()
        .await
    {
        Ok(Ok(resp)) => {
            tracing::debug!(method = %ctx.method, path, code = resp.status().as_u16(), "sandbox API request");
            if watching && resp.status().is_success() {
                return trip_fence(&s.faults, resp).await;
            }
            resp
        }
        Ok(Err(e)) => {
            tracing::debug!(method = %ctx.method, path, code = e.code, reason = %e.reason, "sandbox API request refused");
            error(&e)
        }
        Err(_) => {
            tracing::error!(method = %ctx.method, path, "sandbox API server handler panicked");
            error(&ApiError::internal(format!(
                "the sandbox API server failed handling {} {path}; this is a sandbox bug, please report it",
                ctx.method
            )))
        }
    }
}

/// Shows the object a successful write stored to the armed write fence, then answers as before.
async fn trip_fence(faults: &Faults, resp: Response) -> Response {
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    if let Ok(stored) = serde_json::from_slice::<Value>(&bytes) {
        faults.after_write(&stored);
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// One request, decoded.
struct Ctx {
    who: Identity,
    method: Method,
    headers: HeaderMap,
    query: HashMap<String, String>,
    body: Bytes,
}

impl Ctx {
    fn q(&self, key: &str) -> Option<&str> {
        self.query
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.q(key), Some("true" | "1"))
    }

    fn dry_run(&self) -> bool {
        self.q("dryRun") == Some("All")
    }

    /// The options object admission sees, as kube-apiserver builds it from the query: a patch
    /// is an update (`UpdateOptions`), or a create when it creates (apply).
    fn options(&self, op: Operation) -> Value {
        let kind = match op {
            Operation::Create => "CreateOptions",
            Operation::Delete => "DeleteOptions",
            _ => "UpdateOptions",
        };
        let mut o = json!({"kind": kind, "apiVersion": "meta.k8s.io/v1"});
        if self.dry_run() {
            o["dryRun"] = json!(["All"]);
        }
        if op != Operation::Delete {
            for key in ["fieldManager", "fieldValidation"] {
                if let Some(v) = self.q(key) {
                    o[key] = json!(v);
                }
            }
        }
        o
    }

    /// Whether the client asked for `meta.k8s.io/v1` Tables (`kubectl get`).
    fn wants_table(&self) -> bool {
        self.headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(table::wants_table)
    }

    fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .unwrap_or("application/json")
            .trim()
    }

    /// `fieldManager`, else the User-Agent up to its first `/`, else `unknown` (as kube).
    fn manager(&self) -> String {
        if let Some(m) = self.q("fieldManager") {
            return m.to_string();
        }
        self.headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .and_then(|ua| ua.split('/').next())
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .unwrap_or("unknown")
            .to_string()
    }
}

/// A resource URL, parsed.
struct Target {
    kind: ResourceKind,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

async fn route(s: &Arc<Shared>, ctx: &Ctx, segs: &[&str]) -> Result<Response, ApiError> {
    let get_only = |v: Option<Value>| -> Result<Response, ApiError> {
        if ctx.method != Method::GET {
            return Err(ApiError::method_not_allowed());
        }
        s.count(ctx.who, "get", "discovery");
        v.map(|v| respond(200, &v, &[])).ok_or_else(not_found_path)
    };
    let kinds = s.served_kinds();
    match segs {
        ["version"] => get_only(Some(discovery::version())),
        ["api"] => get_only(Some(discovery::core_versions(&s.addr.to_string()))),
        ["apis"] => get_only(Some(discovery::group_list(&kinds))),
        ["api", "v1"] => get_only(discovery::resource_list(&kinds, "v1")),
        ["apis", group] => get_only(discovery::group(&kinds, group)),
        ["apis", group, version] => get_only(discovery::resource_list(
            &kinds,
            &format!("{group}/{version}"),
        )),
        ["openapi", "v2"] => get_only(None),
        ["openapi", "v3"] => get_only(Some(discovery::openapi_v3_index(&kinds))),
        ["openapi", "v3", "api", "v1"] => get_only(discovery::openapi_v3_document(&kinds, "v1")),
        ["openapi", "v3", "apis", group, version] => get_only(discovery::openapi_v3_document(
            &kinds,
            &format!("{group}/{version}"),
        )),
        ["api", "v1", rest @ ..] => resource(s, ctx, "", "v1", rest).await,
        ["apis", group, version, rest @ ..] => resource(s, ctx, group, version, rest).await,
        _ => Err(not_found_path()),
    }
}

fn parse_target(s: &Shared, group: &str, version: &str, rest: &[&str]) -> Result<Target, ApiError> {
    let namespaced = |plural: &str| s.kind(group, version, plural).filter(|k| k.namespaced);
    let (kind, namespace, tail) = match rest {
        ["namespaces", ns, plural, tail @ ..] if namespaced(plural).is_some() => (
            namespaced(plural).ok_or_else(not_found_path)?,
            Some(ns.to_string()),
            tail,
        ),
        [plural, tail @ ..] => (
            s.kind(group, version, plural).ok_or_else(not_found_path)?,
            None,
            tail,
        ),
        [] => return Err(not_found_path()),
    };
    let (name, sub) = match tail {
        [] => (None, None),
        [name] => (Some(name.to_string()), None),
        [name, sub] if kind.has_subresource(sub) => (Some(name.to_string()), Some(sub.to_string())),
        _ => return Err(not_found_path()),
    };
    // A namespaced kind addressed by name needs a namespace in the path.
    if kind.namespaced && namespace.is_none() && name.is_some() {
        return Err(not_found_path());
    }
    Ok(Target {
        kind,
        namespace,
        name,
        sub,
    })
}

async fn resource(
    s: &Arc<Shared>,
    ctx: &Ctx,
    group: &str,
    version: &str,
    rest: &[&str],
) -> Result<Response, ApiError> {
    let t = parse_target(s, group, version, rest)?;
    let m = &ctx.method;
    // Only list and watch of a namespaced kind work across namespaces.
    if t.kind.namespaced && t.namespace.is_none() && *m != Method::GET {
        return Err(not_found_path());
    }
    match (t.name.is_some(), t.sub.as_deref()) {
        (false, _) if *m == Method::GET => {
            let sel = selection(ctx, &t.kind)?;
            if ctx.flag("watch") {
                Ok(watch(s, ctx, &t, sel))
            } else {
                s.count(ctx.who, "list", t.kind.plural);
                list(s, ctx, &t, &sel)
            }
        }
        (false, _) if *m == Method::POST => {
            s.count(ctx.who, "create", t.kind.plural);
            create(s, ctx, &t).await
        }
        (false, _) if *m == Method::DELETE => {
            s.count(ctx.who, "deletecollection", t.kind.plural);
            delete_collection(s, ctx, &t).await
        }
        (true, Some("scale")) if *m == Method::GET => {
            s.count(ctx.who, "get", t.kind.plural);
            let live = live(s, &t)?;
            Ok(respond(200, &scale_of(&live), &[]))
        }
        (true, Some("scale")) if *m == Method::PUT || *m == Method::PATCH => {
            s.count(
                ctx.who,
                if *m == Method::PUT { "update" } else { "patch" },
                t.kind.plural,
            );
            retry_on_conflict(|| write_scale(s, ctx, &t)).await
        }
        (true, None) if *m == Method::GET && ctx.flag("watch") => {
            // The deprecated single-object watch: a watch with a name field selector.
            let mut sel = selection(ctx, &t.kind)?;
            let name = t.name.clone().unwrap_or_default();
            sel.fields
                .0
                .push((vec!["metadata".to_string(), "name".to_string()], true, name));
            Ok(watch(s, ctx, &t, sel))
        }
        (true, _) if *m == Method::GET => {
            s.count(ctx.who, "get", t.kind.plural);
            let live = live(s, &t)?;
            if ctx.wants_table() {
                let meta = json!({"resourceVersion": live["metadata"]["resourceVersion"]});
                return Ok(respond(200, &table::table(&t.kind, &[live], meta), &[]));
            }
            Ok(respond(200, &present(&t.kind, live), &[]))
        }
        (true, _) if *m == Method::PUT => {
            s.count(ctx.who, "update", t.kind.plural);
            retry_on_conflict(|| update(s, ctx, &t)).await
        }
        (true, _) if *m == Method::PATCH => {
            s.count(ctx.who, "patch", t.kind.plural);
            retry_on_conflict(|| patch(s, ctx, &t)).await
        }
        (true, None) if *m == Method::DELETE => {
            s.count(ctx.who, "delete", t.kind.plural);
            delete(s, ctx, &t).await
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// Re-runs an update whose object changed between read and write, as kube-apiserver's
/// `GuaranteedUpdate` does: the retry reads the new state, so a request with a
/// resourceVersion precondition then fails with a genuine 409. Apply conflicts (with
/// `causes`) are not retried.
async fn retry_on_conflict<F, Fut>(mut attempt: F) -> Result<Response, ApiError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Response, ApiError>>,
{
    for _ in 0..4 {
        match attempt().await {
            Err(e)
                if e.code == 409
                    && e.reason == "Conflict"
                    && e.details.as_ref().is_none_or(|d| d.get("causes").is_none()) =>
            {
                continue;
            }
            other => return other,
        }
    }
    attempt().await
}

fn selection(ctx: &Ctx, kind: &ResourceKind) -> Result<Selection, ApiError> {
    Ok(Selection {
        labels: LabelSelector::parse(ctx.q("labelSelector").unwrap_or(""))?,
        fields: FieldSelector::parse(ctx.q("fieldSelector").unwrap_or(""), kind.kind)?,
    })
}

fn key_of(t: &Target) -> ObjKey {
    (
        t.namespace.clone().unwrap_or_default(),
        t.name.clone().unwrap_or_default(),
    )
}

fn live(s: &Shared, t: &Target) -> Result<Value, ApiError> {
    s.lock_store()
        .get(&t.kind.storage_key(), &key_of(t))
        .cloned()
        .ok_or_else(|| ApiError::not_found(&t.kind, t.name.as_deref().unwrap_or("")))
}

/// The object as the requested version shows it.
fn present(kind: &ResourceKind, obj: Value) -> Value {
    let mut obj = convert::from_storage(kind, obj);
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), json!(kind.api_version()));
        m.insert("kind".into(), json!(kind.kind));
    }
    obj
}

/// The object as it is stored (storage version and shape).
fn stored(kind: &ResourceKind, obj: Value) -> Value {
    let mut obj = convert::to_storage(kind, obj);
    obj["apiVersion"] = json!(kind.storage_api_version());
    obj
}

// ---------------------------------------------------------------------------------------------
// Reads

fn list(s: &Shared, ctx: &Ctx, t: &Target, sel: &Selection) -> Result<Response, ApiError> {
    let limit: usize = match ctx.q("limit") {
        Some(l) => l.parse().map_err(|_| {
            ApiError::bad_request(format!("invalid limit {l:?}: expected a whole number"))
        })?,
        None => 0,
    };
    let after = match ctx.q("continue") {
        Some(token) => Some(store::decode_continue(token, t.namespace.as_deref()).ok_or_else(|| {
            ApiError::bad_request(format!(
                "continue key is not valid: {token:?} is not a continue token this server issued; list again without it"
            ))
        })?),
        None => None,
    };
    let store = s.lock_store();
    let rv = store.resource_version();
    let matching: Vec<&Value> = store
        .list(&t.kind.storage_key(), t.namespace.as_deref())
        .filter(|o| sel.matches(o))
        .filter(|o| after.as_ref().is_none_or(|(_, k)| obj_key(o) > *k))
        .collect();
    let mut meta = json!({"resourceVersion": rv.to_string()});
    let page: Vec<Value> = if limit > 0 && matching.len() > limit {
        let last = obj_key(matching[limit - 1]);
        meta["continue"] = json!(store::encode_continue(rv, t.namespace.as_deref(), &last));
        if sel.is_empty() {
            meta["remainingItemCount"] = json!(matching.len() - limit);
        }
        matching[..limit]
            .iter()
            .map(|o| present(&t.kind, (*o).clone()))
            .collect()
    } else {
        matching
            .iter()
            .map(|o| present(&t.kind, (*o).clone()))
            .collect()
    };
    drop(store);
    if ctx.wants_table() {
        return Ok(respond(200, &table::table(&t.kind, &page, meta), &[]));
    }
    let body = json!({
        "kind": t.kind.list_kind(),
        "apiVersion": t.kind.api_version(),
        "metadata": meta,
        "items": page,
    });
    Ok(respond(200, &body, &[]))
}

fn watch_line(event: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": event, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

fn bookmark(kind: &ResourceKind, rv: u64, initial_end: bool) -> Value {
    let mut meta = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    json!({"kind": kind.kind, "apiVersion": kind.api_version(), "metadata": meta})
}

/// A watch: events streamed as newline-delimited JSON until timeout, shutdown or disconnect.
fn watch(s: &Arc<Shared>, ctx: &Ctx, t: &Target, sel: Selection) -> Response {
    let bookmarks = ctx.flag("allowWatchBookmarks");
    let send_initial = ctx.flag("sendInitialEvents");
    let timeout = ctx
        .q("timeoutSeconds")
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(30 * 60));
    let timeout = s.faults.watch_lifetime(ctx.who, timeout);
    let from = ctx.q("resourceVersion").filter(|v| *v != "0");
    let key = t.kind.storage_key();
    let ns = t.namespace.clone();
    let kind = t.kind.clone();
    let as_table = ctx.wants_table();
    let shape = move |kind: &ResourceKind, obj: &Value| -> Value {
        if as_table {
            let meta = json!({"resourceVersion": obj["metadata"]["resourceVersion"]});
            table::table(kind, std::slice::from_ref(obj), meta)
        } else {
            present(kind, obj.clone())
        }
    };

    let mut initial: Vec<Bytes> = Vec::new();
    let (rx, start) = {
        let store = s.lock_store();
        let rx = store.subscribe();
        let current = store.resource_version();
        match from.map(|v| v.parse::<u64>()) {
            Some(Ok(n)) if !send_initial => match store.changes_since(n) {
                Ok(changes) => {
                    for c in changes.iter().filter(|c| c.storage_key == key) {
                        if let Some((ev, obj)) = store::visible_event(c, ns.as_deref(), &sel) {
                            initial.push(watch_line(ev.as_str(), &shape(&kind, obj)));
                        }
                    }
                    (rx, current.max(n))
                }
                Err(compacted) => {
                    let err = ApiError::expired(n, compacted).to_status();
                    return watch_response(vec![watch_line("ERROR", &err)]);
                }
            },
            Some(Err(_)) => {
                let v = from.unwrap_or_default();
                return error(&ApiError::bad_request(format!(
                    "invalid resource version {v:?}: expected a number this server issued"
                )));
            }
            _ => {
                for o in store.list(&key, ns.as_deref()).filter(|o| sel.matches(o)) {
                    initial.push(watch_line("ADDED", &shape(&kind, o)));
                }
                if send_initial && bookmarks {
                    initial.push(watch_line("BOOKMARK", &bookmark(&kind, current, true)));
                }
                (rx, current)
            }
        }
    };

    let shared = s.clone();
    let (tx, out) = tokio::sync::mpsc::channel::<Result<Bytes, Infallible>>(256);
    let interval = s.bookmark_interval;
    let mut shutdown = s.shutdown.subscribe();
    let mut rx = rx;
    tokio::spawn(async move {
        for line in initial {
            if tx.send(Ok(line)).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(interval);
        ticker.tick().await;
        let mut seen = start;
        loop {
            let line = tokio::select! {
                _ = &mut deadline => return,
                _ = shutdown.changed() => return,
                _ = tx.closed() => return,
                _ = ticker.tick(), if bookmarks => watch_line("BOOKMARK", &bookmark(&kind, seen, false)),
                got = rx.recv() => match got {
                    Ok(c) => {
                        if c.rv <= seen { continue; }
                        seen = c.rv;
                        if c.storage_key != key { continue; }
                        match store::visible_event(&c, ns.as_deref(), &sel) {
                            Some((ev, obj)) => watch_line(ev.as_str(), &shape(&kind, obj)),
                            None => continue,
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        shared.watches_cut.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let err = ApiError::expired(seen, seen).to_status();
                        let _ = tx.send(Ok(watch_line("ERROR", &err))).await;
                        return;
                    }
                    Err(RecvError::Closed) => return,
                },
            };
            if tx.send(Ok(line)).await.is_err() {
                return;
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(out);
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| error(&ApiError::internal("building the watch response")))
}

fn watch_response(lines: Vec<Bytes>) -> Response {
    let stream = futures::stream::iter(lines.into_iter().map(Ok::<_, Infallible>));
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| error(&ApiError::internal("building the watch response")))
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// Decodes a create/update body of `content_type`: JSON, or YAML. kube-apiserver also takes
/// protobuf and CBOR; the sandbox answers those with a 415 worded as kube's.
fn decode_body(kind: &ResourceKind, content_type: &str, body: &[u8]) -> Result<Value, ApiError> {
    match content_type {
        "application/json" | "" => decode_object(kind, body),
        "application/yaml" => {
            let value: Value = serde_saphyr::from_str(&String::from_utf8_lossy(body)).map_err(|e| {
                ApiError::bad_request(format!(
                    "the object provided is unrecognized (must be of type {}): couldn't get version/kind; yaml parse error: {e}",
                    kind.kind
                ))
            })?;
            decode_object(kind, value.to_string().as_bytes())
        }
        _ => Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (the sandbox does not speak {content_type})"
            ),
        )
        .with_details(json!({}))),
    }
}

/// Decodes a JSON request body as kube-apiserver does, a failure worded as its 400.
fn decode_object(kind: &ResourceKind, body: &[u8]) -> Result<Value, ApiError> {
    let text = String::from_utf8_lossy(body);
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        let why = if e.is_eof() {
            "unexpected end of JSON input".to_string()
        } else {
            e.to_string()
        };
        ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {}): couldn't get version/kind; json parse error: {why} ({})",
            kind.kind,
            truncate(&text, 200)
        ))
    })?;
    if !value.is_object() {
        return Err(ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {}): couldn't get version/kind; json parse error: expected a JSON object ({})",
            kind.kind,
            truncate(&text, 200)
        )));
    }
    check_type(kind, &value)?;
    Ok(value)
}

fn check_type(kind: &ResourceKind, value: &Value) -> Result<(), ApiError> {
    if let Some(k) = value.get("kind").and_then(Value::as_str)
        && k != kind.kind
    {
        return Err(ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {}): kind {k:?} does not match the URL",
            kind.kind
        )));
    }
    if let Some(av) = value.get("apiVersion").and_then(Value::as_str)
        && av != kind.api_version()
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            kind.api_version()
        )));
    }
    Ok(())
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}...", s.chars().take(n).collect::<String>())
    }
}

/// Fills in apiVersion/kind/namespace from the URL and refuses a mismatched namespace or name.
fn place(t: &Target, obj: &mut Value) -> Result<(), ApiError> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {}): expected a JSON object, got {}",
            t.kind.kind,
            truncate(&obj.to_string(), 200)
        )));
    }
    obj["apiVersion"] = json!(t.kind.api_version());
    obj["kind"] = json!(t.kind.kind);
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    let meta = &mut obj["metadata"];
    match (&t.namespace, meta.get("namespace").and_then(Value::as_str)) {
        (Some(url), Some(body)) if !body.is_empty() && body != url => {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        (Some(url), _) => meta["namespace"] = json!(url),
        (None, _) => {
            if let Some(m) = meta.as_object_mut() {
                m.remove("namespace");
            }
        }
    }
    if let Some(url) = &t.name {
        match meta.get("name").and_then(Value::as_str) {
            Some(body) if !body.is_empty() && body != url => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({body}) does not match the name on the URL ({url})"
                )));
            }
            _ => meta["name"] = json!(url),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The write pipeline

/// A write on its way through the pipeline.
struct Write<'a> {
    t: &'a Target,
    op: Operation,
    /// The request's options object (`CreateOptions` or `UpdateOptions`).
    options: Value,
    /// The stored object (update) or `None` (create).
    old: Option<Value>,
    /// Record managedFields for this manager (`None` for apply, which already did).
    manager: Option<String>,
}

const ALNUM: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn generate_suffix() -> String {
    (0..5)
        .map(|_| ALNUM[fastrand::usize(..ALNUM.len())] as char)
        .collect()
}

/// Kinds whose `metadata.generation` kube-apiserver maintains, and the field that drives it.
fn generation_field(kind: &ResourceKind) -> Option<&'static str> {
    match kind.kind {
        "Namespace" | "Service" | "ConfigMap" | "Secret" | "Event" | "Lease" => None,
        "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration" => Some("webhooks"),
        _ => Some("spec"),
    }
}

fn strip_system_fields(obj: &mut Value) {
    if let Some(m) = obj["metadata"].as_object_mut() {
        for f in [
            "uid",
            "creationTimestamp",
            "resourceVersion",
            "generation",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            m.remove(f);
        }
    }
}

/// What `BeforeCreate` does: name generation, uid, timestamp, generation, status reset.
fn prepare_for_create(kind: &ResourceKind, obj: &mut Value, ts: &str) {
    strip_system_fields(obj);
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    if name.is_empty()
        && let Some(prefix) = obj["metadata"]["generateName"].as_str()
    {
        obj["metadata"]["name"] = json!(format!("{prefix}{}", generate_suffix()));
    }
    obj["metadata"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
    obj["metadata"]["creationTimestamp"] = json!(ts);
    if generation_field(kind).is_some() {
        obj["metadata"]["generation"] = json!(1);
    }
    if kind.has_subresource("status")
        && kind.kind != "Namespace"
        && let Some(m) = obj.as_object_mut()
    {
        m.remove("status");
    }
    if kind.kind == "Namespace" {
        obj["status"] = json!({"phase": "Active"});
        obj["spec"] = json!({"finalizers": ["kubernetes"]});
        let name = obj["metadata"]["name"].clone();
        if !obj["metadata"]["labels"].is_object() {
            obj["metadata"]["labels"] = json!({});
        }
        obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
    }
}

/// Kinds served from CustomResourceDefinitions in a real cluster.
fn is_custom_resource(kind: &ResourceKind) -> bool {
    matches!(
        kind.group,
        "split.smi-spec.io" | "gateway.networking.k8s.io" | "linkerd.io"
    )
}

/// What `BeforeUpdate` does: immutable metadata kept, status or spec kept by subresource,
/// generation bumped when the spec changes.
fn prepare_for_update(kind: &ResourceKind, obj: &mut Value, old: &Value, sub: Option<&str>) {
    for f in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "generation",
        "name",
        "namespace",
        "generateName",
    ] {
        match old["metadata"].get(f) {
            Some(v) => obj["metadata"][f] = v.clone(),
            None => {
                if let Some(m) = obj["metadata"].as_object_mut() {
                    m.remove(f);
                }
            }
        }
    }
    if obj["metadata"].get("managedFields").is_none()
        && let Some(mf) = old["metadata"].get("managedFields")
    {
        obj["metadata"]["managedFields"] = mf.clone();
    }
    if sub == Some("status") {
        let status = obj.get("status").cloned();
        let mut next = old.clone();
        // What each status strategy lets through besides `.status`: custom resources
        // nothing; Deployments annotations (the deployment controller records
        // `deployment.kubernetes.io/revision` that way); other built-ins all metadata
        // their strategy does not reset (labels and annotations).
        let mut carried: Vec<&str> = Vec::new();
        if !is_custom_resource(kind) {
            carried.push("annotations");
            if kind.kind != "Deployment" {
                carried.push("labels");
            }
        }
        for field in carried {
            match obj["metadata"].get(field) {
                Some(v) => next["metadata"][field] = v.clone(),
                None => {
                    if let Some(m) = next["metadata"].as_object_mut() {
                        m.remove(field);
                    }
                }
            }
        }
        match status {
            Some(st) => next["status"] = st,
            None => {
                if let Some(m) = next.as_object_mut() {
                    m.remove("status");
                }
            }
        }
        next["metadata"]["managedFields"] = obj["metadata"]["managedFields"].clone();
        if next["metadata"]["managedFields"].is_null()
            && let Some(m) = next["metadata"].as_object_mut()
        {
            m.remove("managedFields");
        }
        *obj = next;
        return;
    }
    if kind.has_subresource("status") {
        match old.get("status") {
            Some(st) => obj["status"] = st.clone(),
            None => {
                if let Some(m) = obj.as_object_mut() {
                    m.remove("status");
                }
            }
        }
    }
    let annotations_changed = kind.kind == "Deployment"
        && obj["metadata"].get("annotations") != old["metadata"].get("annotations");
    if let Some(field) = generation_field(kind)
        && (obj.get(field) != old.get(field) || annotations_changed)
    {
        let g = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
        obj["metadata"]["generation"] = json!(g);
    }
}

fn namespace_labels(s: &Shared, t: &Target, obj: &Value) -> BTreeMap<String, String> {
    let ns_obj = if t.kind.kind == "Namespace" {
        Some(obj.clone())
    } else {
        t.namespace.as_deref().and_then(|n| s.namespace(n))
    };
    ns_obj
        .and_then(|n| n["metadata"]["labels"].as_object().cloned())
        .map(|m| {
            m.into_iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k, v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// NamespaceLifecycle: namespaced objects need a live Namespace.
fn check_namespace(s: &Shared, t: &Target, op: Operation) -> Result<(), ApiError> {
    let Some(ns) = t.namespace.as_deref() else {
        return Ok(());
    };
    let namespaces = s
        .kind_by_plural("", "namespaces")
        .ok_or_else(not_found_path)?;
    match s.namespace(ns) {
        None => Err(ApiError::not_found(&namespaces, ns)),
        Some(n) if op == Operation::Create && !n["metadata"]["deletionTimestamp"].is_null() => {
            Err(ApiError::forbidden(format!(
                "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                t.kind.group_resource(),
                t.name.as_deref().unwrap_or("")
            )))
        }
        Some(_) => Ok(()),
    }
}

fn attributes(s: &Shared, ctx: &Ctx, w: &Write<'_>, obj: &Value) -> AdmissionAttributes {
    AdmissionAttributes {
        kind: w.t.kind.clone(),
        sub_resource: w.t.sub.clone(),
        object_kind: None,
        operation: w.op,
        name: obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        namespace: w.t.namespace.clone(),
        user: ctx.who.user_info(),
        dry_run: ctx.dry_run(),
        options: Some(w.options.clone()),
        object: Some(obj.clone()),
        old_object: w.old.as_ref().map(|o| present(&w.t.kind, o.clone())),
        namespace_labels: namespace_labels(s, w.t, obj),
    }
}

/// Whether `new` would store the same object as `current`: equal but for resourceVersion and
/// managedFields timestamps (kube-apiserver skips such writes, and its field manager keeps the
/// old timestamps when nothing else changed).
fn unchanged(current: &Value, new: &Value) -> bool {
    let normal = |o: &Value| {
        let mut o = o.clone();
        if let Some(m) = o["metadata"].as_object_mut() {
            m.remove("resourceVersion");
            if let Some(Value::Array(fields)) = m.get_mut("managedFields") {
                for f in fields.iter_mut().filter_map(Value::as_object_mut) {
                    f.remove("time");
                }
            }
        }
        o
    };
    normal(current) == normal(new)
}

/// Runs an object through defaulting, admission, validation and into the store.
async fn finish(
    s: &Shared,
    ctx: &Ctx,
    w: Write<'_>,
    mut obj: Value,
) -> Result<(Value, Vec<String>), ApiError> {
    let kind = &w.t.kind;
    let ts = now();
    if w.t.kind.kind != "Namespace" || w.op != Operation::Create {
        check_namespace(s, w.t, w.op)?;
    }
    defaults::default_object(kind, &mut obj);
    let mutated = s
        .admitter
        .mutate(
            &s.configs("mutatingwebhookconfigurations"),
            &attributes(s, ctx, &w, &obj),
        )
        .await?;
    let mut warnings = mutated.warnings;
    if let Some(m) = mutated.object {
        obj = m;
    }
    place(w.t, &mut obj)?;
    defaults::default_object(kind, &mut obj);
    match &w.old {
        None => prepare_for_create(kind, &mut obj, &ts),
        Some(old) => prepare_for_update(kind, &mut obj, old, w.t.sub.as_deref()),
    }
    defaults::validate(kind, &obj, w.old.as_ref())?;
    warnings.extend(
        s.admitter
            .validate(
                &s.configs("validatingwebhookconfigurations"),
                &attributes(s, ctx, &w, &obj),
            )
            .await?,
    );
    if let Some(manager) = &w.manager {
        fieldmanager::record_update(
            w.old.as_ref(),
            &mut obj,
            manager,
            &kind.api_version(),
            w.t.sub.as_deref(),
            &ts,
        );
    }
    if ctx.dry_run() {
        return Ok((obj, warnings));
    }
    let mut store = s.lock_store();
    let sk = kind.storage_key();
    let key = obj_key(&obj);
    let current = store.get(&sk, &key).cloned();
    match (&w.old, current) {
        (None, Some(_)) => return Err(ApiError::already_exists(kind, &key.1)),
        (Some(_), None) => return Err(ApiError::not_found(kind, &key.1)),
        // Someone wrote in between: conflict (retried by `retry_on_conflict` against the
        // new state, where a client precondition then fails for good).
        (Some(old), Some(cur)) if object_rv(old) != object_rv(&cur) => {
            return Err(ApiError::conflict(kind, &key.1));
        }
        // A write that changes nothing is not written: no new resourceVersion, no event.
        (Some(_), Some(cur)) if unchanged(&cur, &stored(kind, obj.clone())) => {
            return Ok((present(kind, cur), warnings));
        }
        (Some(_), Some(_)) => {}
        (None, None) => {}
    }
    let finished_deleting = !obj["metadata"]["deletionTimestamp"].is_null()
        && obj["metadata"]["finalizers"]
            .as_array()
            .is_none_or(|f| f.is_empty());
    let saved = store.insert(&sk, stored(kind, obj));
    if finished_deleting {
        store.remove(&sk, &key);
        store.collect_garbage(&ts);
    }
    Ok((present(kind, saved), warnings))
}

async fn create(s: &Shared, ctx: &Ctx, t: &Target) -> Result<Response, ApiError> {
    let mut obj = decode_body(&t.kind, ctx.content_type(), &ctx.body)?;
    place(t, &mut obj)?;
    strip_system_fields(&mut obj);
    let has_name = obj["metadata"]["name"]
        .as_str()
        .is_some_and(|n| !n.is_empty());
    let generated = !has_name && obj["metadata"]["generateName"].is_string();
    let w = Write {
        t,
        op: Operation::Create,
        options: ctx.options(Operation::Create),
        old: None,
        manager: Some(ctx.manager()),
    };
    let mut attempt = finish(s, ctx, w, obj.clone()).await;
    // A generated name that collided: generate another, as kube-apiserver does.
    for _ in 0..5 {
        match &attempt {
            Err(e) if generated && e.reason == "AlreadyExists" => {
                let w = Write {
                    t,
                    op: Operation::Create,
                    options: ctx.options(Operation::Create),
                    old: None,
                    manager: Some(ctx.manager()),
                };
                attempt = finish(s, ctx, w, obj.clone()).await;
            }
            _ => break,
        }
    }
    let (saved, warnings) = attempt?;
    Ok(respond(201, &saved, &warnings))
}

async fn update(s: &Shared, ctx: &Ctx, t: &Target) -> Result<Response, ApiError> {
    let mut obj = decode_body(&t.kind, ctx.content_type(), &ctx.body)?;
    place(t, &mut obj)?;
    let old = live(s, t)?;
    let precondition = obj["metadata"]["resourceVersion"]
        .as_str()
        .filter(|v| !v.is_empty())
        .map(|v| v.parse::<u64>().unwrap_or(u64::MAX));
    if let Some(rv) = precondition
        && rv != object_rv(&old)
    {
        return Err(ApiError::conflict(&t.kind, t.name.as_deref().unwrap_or("")));
    }
    let w = Write {
        t,
        op: Operation::Update,
        options: ctx.options(Operation::Update),
        old: Some(old),
        manager: Some(ctx.manager()),
    };
    let (saved, warnings) = finish(s, ctx, w, obj).await?;
    Ok(respond(200, &saved, &warnings))
}

fn json_patch_failed() -> ApiError {
    ApiError::new(
        422,
        "Invalid",
        "the server rejected our request due to an error in our request",
    )
    .with_details(json!({}))
}

fn decode_patch(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "error decoding patch: {e}; send a JSON document of the declared patch type"
        ))
    })
}

/// Applies a non-apply patch of the request's content type to `live`.
fn apply_patch(ctx: &Ctx, live: &Value) -> Result<Value, ApiError> {
    match ctx.content_type() {
        "application/merge-patch+json" => {
            let p = decode_patch(&ctx.body)?;
            if !p.is_object() {
                return Err(ApiError::bad_request(
                    "error decoding patch: a merge patch must be a JSON object",
                ));
            }
            let mut out = live.clone();
            json_patch::merge(&mut out, &p);
            Ok(out)
        }
        "application/json-patch+json" => {
            let p: json_patch::Patch = serde_json::from_value(decode_patch(&ctx.body)?)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            let mut out = live.clone();
            json_patch::patch(&mut out, &p).map_err(|_| json_patch_failed())?;
            Ok(out)
        }
        "application/strategic-merge-patch+json" => {
            let p = decode_patch(&ctx.body)?;
            strategic::strategic_merge(live, &p)
                .map_err(|e| ApiError::new(422, "Invalid", e.to_string()).with_details(json!({})))
        }
        _ => Err(ApiError::unsupported_media_type()),
    }
}

fn decode_apply(body: &[u8]) -> Result<Value, ApiError> {
    let text = String::from_utf8_lossy(body);
    let v: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(_) => serde_saphyr::from_str(&text).map_err(|e| {
            ApiError::bad_request(format!(
                "error decoding YAML: {e}; an apply patch must be a YAML or JSON object"
            ))
        })?,
    };
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "error decoding YAML: an apply patch must be a YAML or JSON object",
        ));
    }
    Ok(v)
}

async fn patch(s: &Shared, ctx: &Ctx, t: &Target) -> Result<Response, ApiError> {
    let name = t.name.as_deref().unwrap_or("");
    let current = s
        .lock_store()
        .get(&t.kind.storage_key(), &key_of(t))
        .cloned();
    if ctx.content_type() == "application/apply-patch+yaml" {
        let manager = ctx.q("fieldManager").ok_or_else(|| {
            ApiError::new(
                422,
                "Invalid",
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            )
            .with_details(json!({"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [{"reason": "FieldValueRequired", "message": "Required value: is required for apply patch", "field": "fieldManager"}]}))
        })?;
        let mut applied = decode_apply(&ctx.body)?;
        check_type(&t.kind, &applied)?;
        place(t, &mut applied)?;
        let precondition = applied["metadata"]["resourceVersion"]
            .as_str()
            .map(|v| v.parse::<u64>().unwrap_or(u64::MAX));
        // Apply creates a missing object, but not through a subresource.
        if current.is_none() && t.sub.is_some() {
            return Err(ApiError::not_found(&t.kind, name));
        }
        let live_view = current.clone().map(|c| present(&t.kind, c));
        if let (Some(rv), Some(c)) = (precondition, &current)
            && rv != object_rv(c)
        {
            return Err(ApiError::conflict(&t.kind, name));
        }
        let mut merged = fieldmanager::apply(
            live_view.as_ref(),
            &applied,
            manager,
            ctx.flag("force"),
            &t.kind.api_version(),
            &now(),
        )?;
        place(t, &mut merged)?;
        let creating = current.is_none();
        let op = if creating {
            Operation::Create
        } else {
            Operation::Update
        };
        let w = Write {
            t,
            op,
            options: ctx.options(op),
            old: current,
            manager: None,
        };
        let (saved, warnings) = finish(s, ctx, w, merged).await?;
        return Ok(respond(if creating { 201 } else { 200 }, &saved, &warnings));
    }
    let Some(current) = current else {
        // The media type is checked before the object is looked up.
        if !matches!(
            ctx.content_type(),
            "application/merge-patch+json"
                | "application/json-patch+json"
                | "application/strategic-merge-patch+json"
        ) {
            return Err(ApiError::unsupported_media_type());
        }
        return Err(ApiError::not_found(&t.kind, name));
    };
    let view = present(&t.kind, current.clone());
    let mut patched = apply_patch(ctx, &view)?;
    if !patched.is_object() {
        return Err(json_patch_failed());
    }
    let precondition = patched["metadata"]["resourceVersion"]
        .as_str()
        .filter(|v| Some(*v) != view["metadata"]["resourceVersion"].as_str())
        .map(|v| v.parse::<u64>().unwrap_or(u64::MAX));
    if precondition.is_some() {
        return Err(ApiError::conflict(&t.kind, name));
    }
    place(t, &mut patched)?;
    let w = Write {
        t,
        op: Operation::Update,
        options: ctx.options(Operation::Update),
        old: Some(current),
        manager: Some(ctx.manager()),
    };
    let (saved, warnings) = finish(s, ctx, w, patched).await?;
    Ok(respond(200, &saved, &warnings))
}

// ---------------------------------------------------------------------------------------------
// The scale subresource

/// The autoscaling/v1 Scale of a Deployment.
fn scale_of(obj: &Value) -> Value {
    let m = &obj["metadata"];
    let selector = obj["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|l| {
            l.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
            "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"],
        },
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
    })
}

async fn write_scale(s: &Shared, ctx: &Ctx, t: &Target) -> Result<Response, ApiError> {
    let old = live(s, t)?;
    let name = t.name.as_deref().unwrap_or("");
    let current = scale_of(&old);
    let desired = if ctx.method == Method::PUT {
        let v: Value = serde_json::from_slice(&ctx.body).map_err(|e| {
            ApiError::bad_request(format!(
                "the object provided is unrecognized (must be of type Scale): couldn't get version/kind; json parse error: {e}"
            ))
        })?;
        v
    } else {
        apply_patch(ctx, &current)?
    };
    if let Some(rv) = desired["metadata"]["resourceVersion"].as_str()
        && !rv.is_empty()
        && rv.parse::<u64>().ok() != Some(object_rv(&old))
    {
        return Err(ApiError::conflict(&t.kind, name));
    }
    let options = ctx.options(Operation::Update);
    let w = Write {
        t,
        op: Operation::Update,
        options,
        old: Some(old.clone()),
        manager: Some(ctx.manager()),
    };
    check_namespace(s, t, Operation::Update)?;
    let mut attrs = attributes(s, ctx, &w, &desired);
    attrs.object_kind = Some(("autoscaling".into(), "v1".into(), "Scale".into()));
    attrs.old_object = Some(current.clone());
    let mutated = s
        .admitter
        .mutate(&s.configs("mutatingwebhookconfigurations"), &attrs)
        .await?;
    let mut warnings = mutated.warnings;
    let desired = mutated.object.unwrap_or(desired);
    let replicas = desired["spec"]["replicas"]
        .as_i64()
        .ok_or_else(|| ApiError::invalid(&t.kind, name, &[Cause::required("spec.replicas", "")]))?;
    let mut obj = present(&t.kind, old.clone());
    if !obj["spec"].is_object() {
        obj["spec"] = json!({});
    }
    obj["spec"]["replicas"] = json!(replicas);
    prepare_for_update(&t.kind, &mut obj, &old, None);
    defaults::validate(&t.kind, &obj, Some(&old))?;
    attrs.object = Some(desired);
    warnings.extend(
        s.admitter
            .validate(&s.configs("validatingwebhookconfigurations"), &attrs)
            .await?,
    );
    let ts = now();
    fieldmanager::record_update(
        Some(&old),
        &mut obj,
        &w.manager.clone().unwrap_or_default(),
        &t.kind.api_version(),
        Some("scale"),
        &ts,
    );
    if ctx.dry_run() {
        return Ok(respond(200, &scale_of(&obj), &warnings));
    }
    let mut store = s.lock_store();
    let sk = t.kind.storage_key();
    match store.get(&sk, &key_of(t)) {
        Some(cur) if unchanged(cur, &stored(&t.kind, obj.clone())) => {
            return Ok(respond(200, &scale_of(cur), &warnings));
        }
        Some(cur) if object_rv(cur) == object_rv(&old) => {}
        Some(_) => return Err(ApiError::conflict(&t.kind, name)),
        None => return Err(ApiError::not_found(&t.kind, name)),
    }
    let saved = store.insert(&sk, stored(&t.kind, obj));
    Ok(respond(200, &scale_of(&saved), &warnings))
}

// ---------------------------------------------------------------------------------------------
// Deletion

/// `propagationPolicy` from the query or the DeleteOptions body; Background by default.
fn propagation(ctx: &Ctx) -> Result<String, ApiError> {
    let body: Value = if ctx.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&ctx.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?
    };
    if !body.is_null() && !body.is_object() {
        return Err(ApiError::bad_request(
            "error decoding DeleteOptions: expected a JSON object",
        ));
    }
    let policy = ctx
        .q("propagationPolicy")
        .map(str::to_string)
        .or_else(|| body["propagationPolicy"].as_str().map(str::to_string))
        .or_else(|| {
            match body["orphanDependents"]
                .as_bool()
                .or(ctx.q("orphanDependents").map(|v| v == "true"))
            {
                Some(true) => Some("Orphan".into()),
                _ => None,
            }
        })
        .unwrap_or_else(|| "Background".into());
    if !matches!(policy.as_str(), "Background" | "Foreground" | "Orphan") {
        return Err(ApiError::bad_request(format!(
            "invalid propagationPolicy {policy:?}: use Background, Foreground or Orphan"
        )));
    }
    Ok(policy)
}

/// The DeleteOptions admission sees: the body's, with the query's dryRun and propagationPolicy.
fn delete_options(ctx: &Ctx) -> Value {
    let mut o = ctx.options(Operation::Delete);
    if let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&ctx.body) {
        for (k, v) in body {
            if k != "kind" && k != "apiVersion" {
                o[k.as_str()] = v;
            }
        }
    }
    if let Some(p) = ctx.q("propagationPolicy") {
        o["propagationPolicy"] = json!(p);
    }
    o
}

/// Namespaces kube-apiserver refuses to delete.
const IMMORTAL_NAMESPACES: [&str; 3] = ["default", "kube-system", "kube-public"];

/// Deletes one object; returns the HTTP code and body kube-apiserver would send.
async fn delete_one(
    s: &Shared,
    ctx: &Ctx,
    t: &Target,
    policy: &str,
) -> Result<(u16, Value), ApiError> {
    let kind = &t.kind;
    let name = t.name.as_deref().unwrap_or("");
    if kind.kind == "Namespace" && IMMORTAL_NAMESPACES.contains(&name) {
        return Err(ApiError::forbidden(format!(
            "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
        ))
        .with_details(json!({"name": name, "kind": "namespaces"})));
    }
    let old = live(s, t)?;
    let uid = old["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let body: Value = serde_json::from_slice(&ctx.body).unwrap_or(Value::Null);
    if let Some(want) = body["preconditions"]["uid"].as_str()
        && want != uid
    {
        return Err(ApiError::new(409, "Conflict", format!(
            "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: UID in precondition: {want}, UID in object meta: {uid}",
            kind.group_resource()
        )).with_details(json!({"name": name, "group": kind.group, "kind": kind.plural})));
    }
    if let Some(want) = body["preconditions"]["resourceVersion"].as_str()
        && want.parse::<u64>().ok() != Some(object_rv(&old))
    {
        return Err(ApiError::new(409, "Conflict", format!(
            "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {}",
            kind.group_resource(), object_rv(&old)
        )).with_details(json!({"name": name, "group": kind.group, "kind": kind.plural})));
    }
    let attrs = AdmissionAttributes {
        kind: kind.clone(),
        sub_resource: None,
        object_kind: None,
        operation: Operation::Delete,
        name: name.to_string(),
        namespace: t.namespace.clone(),
        user: ctx.who.user_info(),
        dry_run: ctx.dry_run(),
        options: Some(delete_options(ctx)),
        object: None,
        old_object: Some(present(kind, old.clone())),
        namespace_labels: namespace_labels(s, t, &old),
    };
    // kube-apiserver calls mutating webhooks registered for DELETE too (they can only deny).
    s.admitter
        .mutate(&s.configs("mutatingwebhookconfigurations"), &attrs)
        .await?;
    s.admitter
        .validate(&s.configs("validatingwebhookconfigurations"), &attrs)
        .await?;
    let success = || {
        let mut d = json!({"name": name, "kind": kind.plural, "uid": uid});
        if !kind.group.is_empty() {
            d["group"] = json!(kind.group);
        }
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": d})
    };
    let ts = now();
    let finalizing = |o: &Value| {
        o["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty())
    };
    if ctx.dry_run() {
        let has_finalizers = finalizing(&old);
        return Ok((
            200,
            if has_finalizers {
                present(kind, old)
            } else {
                success()
            },
        ));
    }
    let sk = kind.storage_key();
    let key = key_of(t);
    let mut store = s.lock_store();
    // The object may have changed while admission ran: delete what is stored now.
    let old = store
        .get(&sk, &key)
        .filter(|cur| cur["metadata"]["uid"].as_str() == Some(uid.as_str()))
        .cloned()
        .ok_or_else(|| ApiError::not_found(kind, name))?;
    let has_finalizers = finalizing(&old);
    if kind.kind == "Namespace" {
        let mut ns = old.clone();
        ns["metadata"]["deletionTimestamp"] = json!(ts);
        ns["status"] = json!({"phase": "Terminating"});
        let shown = store.insert(&sk, ns);
        store.delete_namespace_contents(name);
        store.remove(&sk, &key);
        store.collect_garbage(&ts);
        return Ok((200, present(kind, shown)));
    }
    if !old["metadata"]["deletionTimestamp"].is_null() {
        return Ok((202, present(kind, old)));
    }
    match policy {
        "Orphan" => store.orphan_dependents(&uid),
        "Foreground" => {
            let mut obj = old.clone();
            let mut fins: Vec<Value> = obj["metadata"]["finalizers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if !fins.iter().any(|f| f == FOREGROUND_FINALIZER) {
                fins.push(json!(FOREGROUND_FINALIZER));
            }
            obj["metadata"]["finalizers"] = json!(fins);
            obj["metadata"]["deletionTimestamp"] = json!(ts);
            obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            let shown = store.insert(&sk, obj);
            store.collect_garbage(&ts);
            return Ok((202, present(kind, shown)));
        }
        _ => {}
    }
    if has_finalizers {
        let mut obj = old.clone();
        obj["metadata"]["deletionTimestamp"] = json!(ts);
        obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        let shown = store.insert(&sk, obj);
        return Ok((202, present(kind, shown)));
    }
    store.remove(&sk, &key);
    store.collect_garbage(&ts);
    Ok((200, success()))
}

async fn delete(s: &Shared, ctx: &Ctx, t: &Target) -> Result<Response, ApiError> {
    let policy = propagation(ctx)?;
    let (code, body) = delete_one(s, ctx, t, &policy).await?;
    Ok(respond(code, &body, &[]))
}

async fn delete_collection(s: &Shared, ctx: &Ctx, t: &Target) -> Result<Response, ApiError> {
    let policy = propagation(ctx)?;
    let sel = selection(ctx, &t.kind)?;
    let targets: Vec<ObjKey> = s
        .lock_store()
        .list(&t.kind.storage_key(), t.namespace.as_deref())
        .filter(|o| sel.matches(o))
        .map(obj_key)
        .collect();
    let mut items = Vec::new();
    for (ns, name) in targets {
        let one = Target {
            kind: t.kind.clone(),
            namespace: (!ns.is_empty()).then_some(ns),
            name: Some(name),
            sub: None,
        };
        match delete_one(s, ctx, &one, &policy).await {
            Ok((_, body)) if body["kind"] != "Status" => items.push(body),
            Ok(_) => {}
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let rv = s.lock_store().resource_version();
    let body = json!({
        "kind": t.kind.list_kind(),
        "apiVersion": t.kind.api_version(),
        "metadata": {"resourceVersion": rv.to_string()},
        "items": items,
    });
    Ok(respond(200, &body, &[]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployments() -> ResourceKind {
        builtin_kinds()
            .into_iter()
            .find(|k| k.plural == "deployments")
            .unwrap()
    }

    fn shared() -> Shared {
        use crate::sandbox::apiserver::admission::{ServiceRef, ServiceResolver};
        let resolver: ServiceResolver = Arc::new(|_: &ServiceRef| None);
        Shared::new(
            Store::new(10),
            Admitter::new(resolver),
            Arc::default(),
            Duration::from_secs(1),
            "127.0.0.1:1".parse().unwrap(),
        )
    }

    #[test]
    fn deleting_a_crd_unserves_it_and_deletes_its_objects_with_watch_events() {
        let s = shared();
        let route = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "web", "namespace": "shop"}});
        let storage = "gateway.networking.k8s.io/httproutes";
        s.lock_store().insert(storage, route);
        let mut changes = s.lock_store().subscribe();
        assert!(
            s.kind("gateway.networking.k8s.io", "v1", "httproutes")
                .is_some()
        );

        assert!(s.delete_crd("gateway.networking.k8s.io", "httproutes"));
        assert!(
            s.kind("gateway.networking.k8s.io", "v1", "httproutes")
                .is_none()
        );
        assert_eq!(s.lock_store().list(storage, None).count(), 0);
        let deleted = changes.try_recv().expect("a DELETED change");
        assert_eq!(deleted.event, store::EventType::Deleted);
        assert_eq!(deleted.object["metadata"]["name"], "web");

        assert!(s.create_crd("gateway.networking.k8s.io", "httproutes"));
        assert!(
            s.kind("gateway.networking.k8s.io", "v1", "httproutes")
                .is_some()
        );
        assert_eq!(
            s.lock_store().list(storage, None).count(),
            0,
            "created empty"
        );
    }

    #[test]
    fn every_version_of_a_crd_goes_and_comes_back_together() {
        let s = shared();
        assert!(s.delete_crd("split.smi-spec.io", "trafficsplits"));
        for v in ["v1alpha1", "v1alpha2"] {
            assert!(
                s.kind("split.smi-spec.io", v, "trafficsplits").is_none(),
                "{v}"
            );
        }
        assert!(s.create_crd("split.smi-spec.io", "trafficsplits"));
        for v in ["v1alpha1", "v1alpha2"] {
            assert!(
                s.kind("split.smi-spec.io", v, "trafficsplits").is_some(),
                "{v}"
            );
        }
    }

    #[test]
    fn only_custom_resources_have_a_crd_to_delete() {
        let s = shared();
        assert!(!s.delete_crd("apps", "deployments"));
        assert!(s.kind("apps", "v1", "deployments").is_some());
        assert!(!s.create_crd("gateway.networking.k8s.io", "gateways"));
    }

    #[test]
    fn requests_are_counted_by_verb_and_by_identity_verb_and_resource() {
        use crate::sandbox::apiserver::admission::{ServiceRef, ServiceResolver};
        let resolver: ServiceResolver = Arc::new(|_: &ServiceRef| None);
        let s = Shared::new(
            Store::new(10),
            Admitter::new(resolver),
            Arc::default(),
            Duration::from_secs(1),
            "127.0.0.1:1".parse().unwrap(),
        );
        s.count(Identity::Sluice, "get", "deployments");
        s.count(Identity::Sluice, "update", "leases");
        s.count(Identity::Admin, "get", "deployments");
        assert_eq!(s.request_counts().get("get"), Some(&2));
        assert_eq!(
            s.request_counts_by(Identity::Sluice),
            BTreeMap::from([
                ("get deployments".to_string(), 1),
                ("update leases".to_string(), 1)
            ])
        );
    }

    #[test]
    fn generation_bumps_when_the_spec_changes_and_not_for_labels() {
        let kind = deployments();
        let old = json!({"metadata": {"name": "a", "generation": 3, "uid": "u"}, "spec": {"replicas": 1}});
        let mut same =
            json!({"metadata": {"name": "a", "labels": {"x": "y"}}, "spec": {"replicas": 1}});
        prepare_for_update(&kind, &mut same, &old, None);
        assert_eq!(same["metadata"]["generation"], 3);
        // Deployments also bump on annotation changes (they are copied to ReplicaSets).
        let mut annotated =
            json!({"metadata": {"name": "a", "annotations": {"x": "y"}}, "spec": {"replicas": 1}});
        prepare_for_update(&kind, &mut annotated, &old, None);
        assert_eq!(annotated["metadata"]["generation"], 4);
        assert_eq!(same["metadata"]["uid"], "u");
        let mut changed = json!({"metadata": {"name": "a"}, "spec": {"replicas": 2}});
        prepare_for_update(&kind, &mut changed, &old, None);
        assert_eq!(changed["metadata"]["generation"], 4);
    }

    #[test]
    fn main_resource_writes_keep_the_stored_status() {
        let kind = deployments();
        let old = json!({"metadata": {"name": "a", "generation": 1}, "spec": {}, "status": {"replicas": 2}});
        let mut new = json!({"metadata": {"name": "a"}, "spec": {}, "status": {"replicas": 9}});
        prepare_for_update(&kind, &mut new, &old, None);
        assert_eq!(new["status"]["replicas"], 2);
    }

    #[test]
    fn status_writes_change_only_the_status() {
        let kind = deployments();
        let old = json!({"metadata": {"name": "a", "generation": 1}, "spec": {"replicas": 1}});
        let mut new =
            json!({"metadata": {"name": "a"}, "spec": {"replicas": 5}, "status": {"replicas": 1}});
        prepare_for_update(&kind, &mut new, &old, Some("status"));
        assert_eq!(new["spec"]["replicas"], 1);
        assert_eq!(new["status"]["replicas"], 1);
        assert_eq!(new["metadata"]["generation"], 1);
    }

    #[test]
    fn status_writes_carry_metadata_only_as_the_kinds_strategy_allows() {
        let kinds = builtin_kinds();
        let find = |plural: &str| kinds.iter().find(|k| k.plural == plural).unwrap();
        let old = json!({"metadata": {"name": "a", "labels": {"l": "1"}}, "spec": {}});
        let new = json!({"metadata": {"name": "a", "labels": {"l": "2"}, "annotations": {"a": "1"}}, "spec": {}, "status": {}});
        let carried = |plural: &str| {
            let mut obj = new.clone();
            prepare_for_update(find(plural), &mut obj, &old, Some("status"));
            (
                obj["metadata"]["labels"]["l"].clone(),
                obj["metadata"]["annotations"]["a"].clone(),
            )
        };
        assert_eq!(carried("deployments"), (json!("1"), json!("1")));
        assert_eq!(carried("services"), (json!("2"), json!("1")));
        assert_eq!(carried("httproutes"), (json!("1"), Value::Null));
    }

    #[test]
    fn a_write_differing_only_in_resource_version_and_timestamps_is_unchanged() {
        let cur = json!({"metadata": {"name": "a", "resourceVersion": "5",
            "managedFields": [{"manager": "m", "time": "2026-01-01T00:00:00Z"}]}, "spec": {"x": 1}});
        let mut same = cur.clone();
        same["metadata"]["resourceVersion"] = json!("9");
        same["metadata"]["managedFields"][0]["time"] = json!("2026-02-02T00:00:00Z");
        assert!(unchanged(&cur, &same));
        let mut other = same.clone();
        other["spec"]["x"] = json!(2);
        assert!(!unchanged(&cur, &other));
    }

    #[test]
    fn create_generates_names_and_drops_client_set_system_fields() {
        let kind = deployments();
        let mut obj = json!({"metadata": {"generateName": "web-", "uid": "mine", "resourceVersion": "7"}, "spec": {}, "status": {"replicas": 3}});
        prepare_for_create(&kind, &mut obj, "2026-01-01T00:00:00Z");
        let name = obj["metadata"]["name"].as_str().unwrap();
        assert!(name.starts_with("web-") && name.len() == 9, "{name}");
        assert_ne!(obj["metadata"]["uid"], "mine");
        assert!(obj["metadata"]["resourceVersion"].is_null());
        assert_eq!(obj["metadata"]["generation"], 1);
        assert!(obj.get("status").is_none());
    }

    #[test]
    fn malformed_json_is_worded_as_kube_apiserver_words_it() {
        let err = decode_object(&deployments(), br#"{"apiVersion": "#).unwrap_err();
        assert_eq!(err.code, 400);
        assert_eq!(
            err.message,
            "the object provided is unrecognized (must be of type Deployment): couldn't get version/kind; json parse error: unexpected end of JSON input ({\"apiVersion\": )"
        );
    }
}
