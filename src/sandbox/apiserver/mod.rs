//! The sandbox's Kubernetes API server: HTTPS on a free 127.0.0.1 port, kube-apiserver
//! semantics over `serde_json::Value` objects for every kind in [`resources::builtin_kinds`].
//!
//! ```text
//! kube::Client / kubectl ──TLS──► server (auth, routing) ──► pipeline ──► store ──► watches
//!                                         │ decode → default → mutate → default → validate
//!                                         ▼
//!                                   admission webhooks (Admitter)
//! ```
//!
//! - [`server`]: routes, handlers and the write pipeline.
//! - [`store`]: objects, the resourceVersion counter, watch history and garbage collection.
//! - [`selectors`]: label and field selectors. [`discovery`]: discovery and OpenAPI documents.
//! - [`table`]: the Tables `kubectl get` prints.
//! - [`kubeconfig`]: the kubeconfig files written at start.
//!
//! Where the sandbox knowingly differs from kube-apiserver:
//! - Authentication is one fixed bearer token per [`Identity`]; there is no RBAC: every
//!   authenticated user may do everything. No/unknown token → 401 on every path except
//!   `/healthz`, `/livez` and `/readyz`.
//! - Objects are JSON values with no schema: unknown fields are kept, not pruned, unless
//!   `defaults::validate` refuses them. Multi-version kinds (TrafficSplit) share one storage
//!   and only `apiVersion` is rewritten between versions, as the CRD's `conversion: None`
//!   does in a real cluster.
//! - core/v1 and events.k8s.io/v1 Events are separate storages (the real server shares one
//!   and converts).
//! - JSON and YAML only: protobuf request bodies (kubectl's imperative `create configmap`,
//!   `create deployment` ...) get a 415; `kubectl apply/create/replace -f` send JSON and work.
//! - No pods, ReplicaSets or other kinds outside the table; no aggregated discovery.
//! - CustomResourceDefinitions are not objects: the custom resources (TrafficSplit, HTTPRoute,
//!   ServiceProfile) are built in, and [`ApiServer::delete_crd`] / [`ApiServer::create_crd`] do
//!   what deleting or creating the CRD does (objects deleted with DELETED events, the versions
//!   leave discovery and answer 404). A watch of the resource already open is not closed: it
//!   goes quiet, and the client's next watch or list gets the 404.
//! - Further per-area differences are listed in each module's docs.

pub mod admission;
pub mod convert;
pub mod defaults;
pub mod discovery;
pub mod fault;
pub mod fieldmanager;
pub mod kubeconfig;
pub mod resources;
pub mod selectors;
pub mod server;
pub mod status;
pub mod store;
pub mod strategic;
pub mod table;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use self::admission::{Admitter, ServiceRef, ServiceResolver, UserInfo};
use self::server::Shared;
use self::store::Store;

/// Errors starting the API server or building a client for it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("sandbox API server TLS: {0}")]
    Tls(#[from] crate::tls::Error),
    #[error(
        "sandbox API server: {what}: {source}; check that the directory is writable and 127.0.0.1 has a free port"
    )]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("sandbox kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("building a kube::Client for the sandbox API server: {0}")]
    Client(#[from] kube::Error),
}

impl Error {
    fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

/// How to run the API server.
#[derive(Clone, Debug)]
pub struct ApiServerOptions {
    /// Changes kept for watch resumption; a watch from an older resourceVersion gets 410.
    pub watch_history: usize,
    /// How often `allowWatchBookmarks` watches get a BOOKMARK.
    pub bookmark_interval: Duration,
    /// Where the kubeconfig files go; a temporary directory (removed with the server) if unset.
    pub dir: Option<PathBuf>,
}

impl Default for ApiServerOptions {
    fn default() -> Self {
        Self {
            // Onboarding 5,000 Deployments makes ~45,000 changes (create, status, Services,
            // route, the simulator's status): a watch that lags through it can still resume.
            watch_history: 50_000,
            bookmark_interval: Duration::from_secs(1),
            dir: None,
        }
    }
}

/// Who a request comes from. Each identity has a fixed bearer token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Identity {
    /// `kubernetes-admin`, a member of `system:masters`.
    Admin,
    /// Sluice's ServiceAccount `sluice-system/sluice`.
    Sluice,
    /// kube-controller-manager's HPA controller, `kube-system/horizontal-pod-autoscaler`: the
    /// sandbox's [`crate::sandbox::workload::hpa`] controller scales as it.
    HpaController,
}

impl Identity {
    /// Every identity, for token lookup.
    pub const ALL: [Identity; 3] = [Identity::Admin, Identity::Sluice, Identity::HpaController];

    pub fn username(self) -> &'static str {
        match self {
            Identity::Admin => "kubernetes-admin",
            Identity::Sluice => "system:serviceaccount:sluice-system:sluice",
            Identity::HpaController => {
                "system:serviceaccount:kube-system:horizontal-pod-autoscaler"
            }
        }
    }

    pub fn groups(self) -> Vec<String> {
        let groups: &[&str] = match self {
            Identity::Admin => &["system:masters", "system:authenticated"],
            Identity::Sluice => &[
                "system:serviceaccounts",
                "system:serviceaccounts:sluice-system",
                "system:authenticated",
            ],
            Identity::HpaController => &[
                "system:serviceaccounts",
                "system:serviceaccounts:kube-system",
                "system:authenticated",
            ],
        };
        groups.iter().map(|g| g.to_string()).collect()
    }

    /// The bearer token that authenticates as this identity.
    pub fn token(self) -> &'static str {
        match self {
            Identity::Admin => "sluice-sandbox-admin-token",
            Identity::Sluice => "sluice-sandbox-sluice-sa-token",
            Identity::HpaController => "sluice-sandbox-hpa-controller-sa-token",
        }
    }

    /// `admin.kubeconfig` / `sluice.kubeconfig` / `hpa-controller.kubeconfig`.
    pub fn file_name(self) -> &'static str {
        match self {
            Identity::Admin => "admin.kubeconfig",
            Identity::Sluice => "sluice.kubeconfig",
            Identity::HpaController => "hpa-controller.kubeconfig",
        }
    }

    /// The identity a bearer token authenticates, if any.
    pub fn from_token(token: &str) -> Option<Identity> {
        Identity::ALL.into_iter().find(|i| i.token() == token)
    }

    /// `request.userInfo` as admission webhooks see it.
    pub fn user_info(self) -> UserInfo {
        UserInfo {
            username: self.username().to_string(),
            uid: String::new(),
            groups: self.groups(),
        }
    }
}

/// A running sandbox API server. Clones share the server.
#[derive(Clone)]
pub struct ApiServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    ca_pem: String,
    dir: PathBuf,
    handle: axum_server::Handle<SocketAddr>,
    _tempdir: Option<Arc<tempfile::TempDir>>,
}

impl ApiServer {
    /// Mints a CA and a serving certificate, binds a free 127.0.0.1 port, writes the
    /// kubeconfig files and starts serving.
    pub async fn start(opts: ApiServerOptions) -> Result<ApiServer, Error> {
        crate::tls::install_crypto_provider();
        let ca = crate::tls::Ca::new("sluice sandbox CA")?;
        let issued = ca.issue(&["localhost"], &[IpAddr::V4(Ipv4Addr::LOCALHOST)])?;
        let tls =
            crate::tls::server_config("sandbox API server", &issued.cert_pem, &issued.key_pem)?;

        let (dir, tempdir) = match &opts.dir {
            Some(d) => {
                std::fs::create_dir_all(d)
                    .map_err(|e| Error::io(format!("creating {}", d.display()), e))?;
                (d.clone(), None)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("sluice-sandbox-")
                    .tempdir()
                    .map_err(|e| Error::io("creating a temporary directory", e))?;
                (t.path().to_path_buf(), Some(Arc::new(t)))
            }
        };

        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| Error::io("binding 127.0.0.1:0", e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("configuring the listener", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("reading the bound address", e))?;

        let services: Arc<RwLock<HashMap<(String, String), SocketAddr>>> = Arc::default();
        let lookup = services.clone();
        let resolver: ServiceResolver = Arc::new(move |r: &ServiceRef| {
            lookup
                .read()
                .ok()?
                .get(&(r.namespace.clone(), r.name.clone()))
                .copied()
        });
        let shared = Arc::new(Shared::new(
            Store::new(opts.watch_history),
            Admitter::new(resolver),
            services,
            opts.bookmark_interval,
            addr,
        ));

        for who in Identity::ALL {
            let path = dir.join(who.file_name());
            let doc = kubeconfig::render(&format!("https://{addr}"), ca.cert_pem(), who);
            std::fs::write(&path, doc.to_string())
                .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        }

        let handle = axum_server::Handle::new();
        // TCP_NODELAY: without it small responses wait for the peer's delayed ACK (~40 ms).
        let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(
            axum_server::tls_rustls::RustlsConfig::from_config(tls),
        )
        .acceptor(axum_server::accept::NoDelayAcceptor::new());
        let server = axum_server::from_tcp(listener)
            .map_err(|e| Error::io("starting the TLS listener", e))?
            .acceptor(acceptor)
            .handle(handle.clone());
        let app = server::router(shared.clone());
        tokio::spawn(async move {
            if let Err(e) = server.serve(app.into_make_service()).await {
                tracing::error!(error = %e, "sandbox API server stopped");
            }
        });
        handle.listening().await;

        Ok(ApiServer {
            shared,
            addr,
            ca_pem: ca.cert_pem().to_string(),
            dir,
            handle,
            _tempdir: tempdir,
        })
    }

    /// `https://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The CA that signed the serving certificate, PEM.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// The kubeconfig file (JSON) for `who`, written at start.
    pub fn kubeconfig_path(&self, who: Identity) -> PathBuf {
        self.dir.join(who.file_name())
    }

    /// An unmodified `kube::Client` built from `who`'s kubeconfig.
    pub async fn client(&self, who: Identity) -> Result<kube::Client, Error> {
        let path = self.kubeconfig_path(who);
        let kubeconfig =
            kube::config::Kubeconfig::read_from(&path).map_err(|source| Error::Kubeconfig {
                path: path.clone(),
                source,
            })?;
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .map_err(|source| Error::Kubeconfig { path, source })?;
        Ok(kube::Client::try_from(config)?)
    }

    /// Serves (`true`) or hides (`false`) a group version such as `split.smi-spec.io/v1alpha2`:
    /// hidden ones leave discovery and their URLs answer 404.
    pub fn set_served(&self, group_version: &str, served: bool) {
        self.shared.set_served(group_version, served);
    }

    /// Deletes the CustomResourceDefinition of `plural.group` (`httproutes`,
    /// `gateway.networking.k8s.io`) as kube-apiserver does: its objects are deleted (watches
    /// see DELETED), then its versions leave discovery and their URLs answer 404. `false` when
    /// the sandbox serves no custom resource of that name.
    pub fn delete_crd(&self, group: &str, plural: &str) -> bool {
        self.shared.delete_crd(group, plural)
    }

    /// Creates the CustomResourceDefinition of `plural.group` again, served and empty.
    pub fn create_crd(&self, group: &str, plural: &str) -> bool {
        self.shared.create_crd(group, plural)
    }

    /// Drops the watch history, so a watch from any earlier resourceVersion gets 410 Expired.
    pub fn compact(&self) {
        self.shared.lock_store().compact();
    }

    /// Makes webhook `service` references to `namespace/name` resolve to `addr`.
    pub fn register_service(&self, namespace: &str, name: &str, addr: SocketAddr) {
        if let Ok(mut s) = self.shared.services.write() {
            s.insert((namespace.to_string(), name.to_string()), addr);
        }
    }

    /// Arms a write fence (see [`fault`]): once `who` has made a write whose stored object
    /// satisfies `trips_on`, its later writes are refused with 503 until [`lift_fence`](Self::lift_fence).
    pub fn fence_writes(
        &self,
        who: Identity,
        trips_on: impl Fn(&serde_json::Value) -> bool + Send + Sync + 'static,
    ) {
        self.shared.faults.fence(who, Box::new(trips_on));
    }

    /// Whether the armed write fence has tripped.
    pub fn fence_tripped(&self) -> bool {
        self.shared.faults.tripped()
    }

    /// Makes the server unreliable for one client ([`fault::FaultPlan`]); `None` ends it.
    pub fn set_fault_plan(&self, plan: Option<fault::FaultPlan>) {
        self.shared.faults.set_plan(plan);
    }

    /// Errors the fault plan has injected so far.
    pub fn faults_injected(&self) -> u64 {
        self.shared.faults.injected()
    }

    /// Removes the write fence.
    pub fn lift_fence(&self) {
        self.shared.faults.lift();
    }

    /// Requests served so far, by verb (`get`, `list`, `create`, ...), watches excluded.
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.shared.request_counts()
    }

    /// `who`'s requests so far, by verb and resource (`update leases`, `get discovery`, ...),
    /// watches excluded.
    pub fn request_counts_by(&self, who: Identity) -> BTreeMap<String, u64> {
        self.shared.request_counts_by(who)
    }

    /// Watches ended so far with 410 Expired because their client fell behind.
    pub fn watches_cut(&self) -> u64 {
        self.shared.watches_cut()
    }

    /// Ends every watch and stops serving.
    pub async fn shutdown(&self) {
        self.shared.shutdown();
        self.handle.graceful_shutdown(Some(Duration::from_secs(1)));
        // Give in-flight connections their grace period.
        for _ in 0..50 {
            if self.handle.connection_count() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
