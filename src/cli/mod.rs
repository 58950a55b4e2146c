//! The `sluice` command line: one binary, one subcommand per job (DESIGN §1).
//! This is the only place that uses `anyhow`; everything below it has typed errors.
//!
//! Manual control (`pause`, `resume`, `promote`, `abort`, `retry`) is in [`control`];
//! `explain` in [`explain`]; `status` in [`status`]; the annotation reference in [`docs`].
//!
//! The same code is the kubectl plugin: run as `kubectl-sluice` (the second binary, or a
//! symlink or copy of `sluice` by that name on PATH), `kubectl sluice status|explain|pause|...`
//! parses the same command line, with `kubectl sluice` in its usage lines. The commands that
//! talk to a cluster take kubectl's `--kubeconfig`, `--context` and `-n`; `status` also `-A`,
//! `-o wide|json|yaml` and `-w`, and `explain` `-o json|yaml`.

pub mod certs;
pub mod control;
pub mod docs;
pub mod explain;
pub mod status;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

use crate::policy::keys::Control;
use crate::sandbox::embedded::Embedded;
use crate::sandbox::{self, MetricsBackend, Sandbox, SandboxOptions};

#[derive(Parser, Debug)]
#[command(
    name = "sluice",
    version,
    about = "Progressive delivery for plain Kubernetes Deployments"
)]
struct Cli {
    /// How log lines are written to stderr: `text` for people, `json` for log pipelines.
    #[arg(
        long,
        global = true,
        env = "SLUICE_LOG_FORMAT",
        value_enum,
        default_value_t
    )]
    log_format: crate::telemetry::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the admission webhook and the controller (one process; deploy/ runs it in-cluster).
    Serve(ServeArgs),
    /// Show managed Deployments' rollouts: phase, weight, revisions, failed checks; -w watches.
    Status(StatusArgs),
    /// Issue the webhook's CA and serving certificate (rcgen): write the Secret sluice-tls and
    /// the caBundle of both webhook configurations, or print them. Run again to rotate.
    Certs(CertsArgs),
    /// Why a Deployment is or is not managed, and every effective setting with its source
    /// (deployment, namespace, cluster or default) and every invalid value.
    Explain(ExplainArgs),
    /// Hold a rollout at its current weight: no analysis, no progress deadline, until resume.
    /// At rest, the next rollout holds at 0% once -primary is ready.
    Pause(ControlArgs),
    /// Continue a paused rollout; the next analysis runs one interval later.
    Resume(ControlArgs),
    /// Skip the remaining steps and promote, once an analysis of this rollout has passed.
    Promote(PromoteArgs),
    /// Roll back now: all traffic to the stable version, its template restored.
    Abort(ControlArgs),
    /// Let a rolled-back revision be applied again.
    Retry(ControlArgs),
    /// Print reference documentation generated from the code (`docs annotations`: the
    /// Markdown table of every sluice.dev/ key, as README.md carries it).
    Docs(DocsArgs),
    /// Start an in-process cluster (API server, workload and mesh simulators, Prometheus) and run
    /// the demo on it; with --hold, keep it up for kubectl and the end-to-end tests instead.
    Sandbox(SandboxArgs),
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// Kubeconfig to use; in-cluster configuration (or ~/.kube/config) when absent.
    #[arg(long, env = "SLUICE_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// The webhook's serving certificate (PEM).
    #[arg(
        long,
        env = "SLUICE_TLS_CERT",
        default_value = "/etc/sluice/tls/tls.crt"
    )]
    tls_cert: PathBuf,
    /// The webhook's private key (PEM).
    #[arg(
        long,
        env = "SLUICE_TLS_KEY",
        default_value = "/etc/sluice/tls/tls.key"
    )]
    tls_key: PathBuf,
    /// Where the webhook listens (HTTPS).
    #[arg(long, env = "SLUICE_WEBHOOK_ADDR", default_value = "0.0.0.0:8443")]
    webhook_addr: SocketAddr,
    /// Where /healthz, /readyz and /metrics listen (plain HTTP).
    #[arg(long, env = "SLUICE_ADMIN_ADDR", default_value = "0.0.0.0:8080")]
    admin_addr: SocketAddr,
    /// The Prometheus HTTP API that holds Linkerd's metrics.
    #[arg(
        long,
        env = "SLUICE_PROMETHEUS_URL",
        default_value = "http://prometheus.linkerd-viz.svc.cluster.local:9090"
    )]
    prometheus_url: String,
    #[command(flatten)]
    prometheus: crate::serve::PrometheusArgs,
    /// Sluice's own namespace (where the sluice-policy ConfigMap lives).
    #[arg(long, env = "SLUICE_NAMESPACE", default_value = "sluice-system")]
    namespace: String,
    /// How long the controller's Lease holds without renewal: a standby replica takes over
    /// within this after the leader dies. Renewed every third of it.
    #[arg(
        long,
        env = "SLUICE_LEASE_DURATION",
        default_value = "15s",
        value_parser = parse_lease_duration
    )]
    lease_duration: std::time::Duration,
    /// On SIGTERM, how long the webhook keeps answering after /readyz fails, so that the
    /// Service's endpoints drop this replica before it stops accepting. Then admissions in
    /// flight get up to 5s more; keep the sum under terminationGracePeriodSeconds.
    #[arg(
        long,
        env = "SLUICE_SHUTDOWN_DELAY",
        default_value = "5s",
        value_parser = parse_shutdown_delay
    )]
    shutdown_delay: std::time::Duration,
}

/// A shutdown delay: a humantime duration of at most 20 s (the Pod has 30 s in all).
fn parse_shutdown_delay(v: &str) -> Result<std::time::Duration, String> {
    crate::serve::parse_duration_flag(
        v,
        crate::serve::Bound::AtMost(std::time::Duration::from_secs(20)),
        "with 5s for admissions in flight it must end within the Pod's \
         terminationGracePeriodSeconds (30s); 5s is enough for endpoints to update",
    )
}

/// A lease duration: a humantime duration of at least one second.
fn parse_lease_duration(v: &str) -> Result<std::time::Duration, String> {
    crate::serve::parse_duration_flag(
        v,
        crate::serve::Bound::AtLeast(std::time::Duration::from_secs(1)),
        "the lease is renewed every third of it, so give at least 1s (15s is client-go's default)",
    )
}

/// Which cluster to talk to, as kubectl takes it.
#[derive(clap::Args, Debug, Clone, Default)]
struct ClusterArgs {
    /// Kubeconfig to use; $KUBECONFIG or ~/.kube/config when absent.
    #[arg(long, env = "SLUICE_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use; its current-context when absent.
    #[arg(long)]
    context: Option<String>,
}

#[derive(clap::Args, Debug)]
struct StatusArgs {
    /// Only this Deployment: deploy/NAME or NAME.
    target: Option<String>,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Only this namespace; the kubeconfig context's when neither -n nor -A is given.
    #[arg(short = 'n', long, conflicts_with = "all_namespaces")]
    namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// Output format: wide (more columns), json or yaml.
    #[arg(short = 'o', long, value_enum)]
    output: Option<status::Output>,
    /// Watch: print the table, then a row each time a rollout's phase or weight changes.
    #[arg(short = 'w', long)]
    watch: bool,
    /// With -w: exit once every rollout shown is done (at rest or Blocked, no update held);
    /// exit 1 if one that moved ended Failed or Blocked.
    #[arg(long, requires = "watch")]
    until_done: bool,
}

#[derive(clap::Args, Debug)]
struct DocsArgs {
    #[command(subcommand)]
    topic: DocsTopic,
}

#[derive(Subcommand, Debug)]
enum DocsTopic {
    /// The Markdown table of every annotation and label Sluice reads, with defaults and
    /// where each may be set; README.md's reference is this output.
    Annotations,
}

#[derive(clap::Args, Debug)]
struct CertsArgs {
    /// Sluice's namespace: the serving certificate is for sluice.NAMESPACE.svc, and the Secret
    /// sluice-tls is written there.
    #[arg(long, env = "SLUICE_NAMESPACE", default_value = "sluice-system")]
    namespace: String,
    /// Print the Secret and the caBundle as YAML instead of writing them.
    #[arg(long)]
    print: bool,
    #[command(flatten)]
    cluster: ClusterArgs,
}

#[derive(clap::Args, Debug)]
struct TargetArgs {
    /// The Deployment: deploy/NAME, deployment/NAME or NAME.
    target: String,
    /// Its namespace; the kubeconfig context's when absent.
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    #[command(flatten)]
    cluster: ClusterArgs,
}

#[derive(clap::Args, Debug)]
struct ControlArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// How long to wait for the controller to act on it.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

#[derive(clap::Args, Debug)]
struct PromoteArgs {
    #[command(flatten)]
    control: ControlArgs,
    /// Promote even if no analysis has passed yet (the canary must still be ready).
    #[arg(long)]
    force: bool,
}

#[derive(clap::Args, Debug)]
struct ExplainArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Sluice's own namespace, where the sluice-policy ConfigMap lives.
    #[arg(long, env = "SLUICE_NAMESPACE", default_value = "sluice-system")]
    sluice_namespace: String,
    /// Output format: json or yaml (the same answer as data); text when absent.
    #[arg(short = 'o', long, value_enum)]
    output: Option<status::Document>,
}

#[derive(clap::Args, Debug)]
struct SandboxArgs {
    /// Stay up and print `KUBECONFIG=PATH` instead of running the demo; Ctrl-C stops. Drive
    /// rollouts with kubectl; the image tag picks a version's behaviour: `bad` 10% errors,
    /// `slow` p99 ~900ms, `broken` never ready.
    #[arg(long)]
    hold: bool,
    /// How long a new pod takes to become ready.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    ready_delay: Duration,
    /// Use the built-in query endpoint even when a `prometheus` binary is installed.
    #[arg(long)]
    builtin_metrics: bool,
    /// With --hold: run the bare cluster, without Sluice's webhook and controller.
    #[arg(long, requires = "hold")]
    no_sluice: bool,
}

/// Requests per second the mesh sends to every user Service under `sluice sandbox --hold`.
const HOLD_LOAD_RPS: f64 = 20.0;

/// How the usage lines name the program: `kubectl sluice` when run as the kubectl plugin
/// (`kubectl-sluice`, by any path), else `sluice`.
pub fn program_name(argv0: &std::ffi::OsStr) -> &'static str {
    let file = Path::new(argv0)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    if file.starts_with(PLUGIN) {
        "kubectl sluice"
    } else {
        "sluice"
    }
}

/// The kubectl plugin's file name: kubectl runs `kubectl-sluice` for `kubectl sluice`.
pub const PLUGIN: &str = "kubectl-sluice";

/// Parses the command line and runs the command; the process exit code. Both binaries
/// (`sluice` and the kubectl plugin `kubectl-sluice`) are this function.
pub fn main() -> ExitCode {
    crate::tls::install_crypto_provider();
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let matches = Cli::command().bin_name(program_name(&argv0)).get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    crate::telemetry::init_with(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => run_serve(args).await,
            Command::Status(args) => run_status(args).await,
            Command::Docs(args) => run_docs(args),
            Command::Certs(args) => run_certs(args).await,
            Command::Sandbox(args) => run_sandbox(args).await,
            Command::Explain(args) => run_explain(args).await,
            Command::Pause(args) => run_control(args, Control::Pause, false).await,
            Command::Resume(args) => run_control(args, Control::Resume, false).await,
            Command::Promote(args) => run_control(args.control, Control::Promote, args.force).await,
            Command::Abort(args) => run_control(args, Control::Abort, false).await,
            Command::Retry(args) => run_control(args, Control::Retry, false).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each cause added only when the text so far does not already say
/// it (typed errors often quote their source in their own message).
fn describe(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !out.contains(&cause) {
            out.push_str(": ");
            out.push_str(&cause);
        }
    }
    out
}

async fn run_sandbox(args: SandboxArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let opts = SandboxOptions {
        ready_delay: args.ready_delay,
        metrics: if args.builtin_metrics {
            MetricsBackend::Builtin
        } else {
            MetricsBackend::Auto
        },
    };
    let sandbox = Sandbox::start(opts).await.context("starting the sandbox")?;
    if sandbox.metrics.is_simulated() {
        println!(
            "metrics: no `prometheus` binary found, using the built-in query endpoint (built-in checks only; apt-get install -y prometheus for real PromQL)"
        );
    }
    let sluice = if args.no_sluice {
        None
    } else {
        Some(
            Embedded::start(&sandbox)
                .await
                .context("starting Sluice in the sandbox")?,
        )
    };
    if args.hold {
        let _load = sandbox
            .steady_load(HOLD_LOAD_RPS)
            .await
            .context("starting the steady load")?;
        println!("KUBECONFIG={}", sandbox.kubeconfig_path().display());
        eprintln!(
            "sandbox up: API server {}, Prometheus API {}, mesh metrics http://{}/metrics; {HOLD_LOAD_RPS} req/s to every Service you create. Ctrl-C stops.",
            sandbox.api.url(),
            sandbox.metrics.url(),
            sandbox.mesh.metrics_addr()
        );
        // SIGTERM too: the default action would skip the clean-up and leave Prometheus running.
        shutdown_signal().await;
        eprintln!("stopping the sandbox");
        if let Some(sluice) = sluice {
            sluice.shutdown().await;
        }
        sandbox.shutdown().await;
        return Ok(());
    }
    println!(
        "sluice sandbox: API server {}, Sluice's webhook and controller running inside it",
        sandbox.api.url()
    );
    let outcome = sandbox::demo::run(&sandbox).await;
    if let Some(sluice) = sluice {
        sluice.shutdown().await;
    }
    sandbox.shutdown().await;
    let summary = outcome.context("the sandbox demo failed")?;
    println!("\nsummary:");
    for line in &summary.lines {
        println!("  {}", line.trim_start());
    }
    println!("total {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The Deployment a verb or `explain` names, and its Namespace; a missing Deployment is an
/// error that says what to check.
async fn read_target(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> anyhow::Result<(
    k8s_openapi::api::apps::v1::Deployment,
    Option<k8s_openapi::api::core::v1::Namespace>,
)> {
    let object = format!("Deployment {namespace}/{name}");
    let deploy =
        kube::Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client.clone(), namespace)
            .get_opt(name)
            .await
            .with_context(|| format!("reading {object}"))?
            .with_context(|| {
                format!("{object} not found; check the name and the namespace (-n NAMESPACE)")
            })?;
    let ns = kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .get_opt(namespace)
        .await
        .with_context(|| format!("reading Namespace {namespace}"))?;
    Ok((deploy, ns))
}

/// A client from `--kubeconfig` (else $KUBECONFIG / ~/.kube/config) and `--context`, or, with
/// neither flag, inferred (in-cluster, then $KUBECONFIG / ~/.kube/config).
async fn client(cluster: &ClusterArgs) -> anyhow::Result<kube::Client> {
    let options = kube::config::KubeConfigOptions {
        context: cluster.context.clone(),
        ..Default::default()
    };
    let context = |what: String| match &cluster.context {
        Some(c) => format!("{what} with context {c}"),
        None => what,
    };
    let config = match (&cluster.kubeconfig, &cluster.context) {
        (Some(path), _) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &options)
                .await
                .with_context(|| context(format!("using kubeconfig {}", path.display())))?
        }
        (None, Some(_)) => kube::Config::from_kubeconfig(&options)
            .await
            .with_context(|| context("using $KUBECONFIG or ~/.kube/config".into()))?,
        (None, None) => kube::Config::infer().await.context(
            "no --kubeconfig, no in-cluster service account and no usable ~/.kube/config",
        )?,
    };
    kube::Client::try_from(config).context("building the Kubernetes client")
}

/// The client, the namespace (`-n`, else the kubeconfig context's) and the Deployment's name.
async fn target(args: &TargetArgs) -> anyhow::Result<(kube::Client, String, String)> {
    let name = control::parse_target(&args.target)?;
    let client = client(&args.cluster).await?;
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    Ok((client, namespace, name))
}

async fn run_control(args: ControlArgs, verb: Control, force: bool) -> anyhow::Result<()> {
    let (client, namespace, name) = target(&args.target).await?;
    let report = control::request(&client, &namespace, &name, verb, force, args.timeout).await?;
    if report.refused() {
        anyhow::bail!("{report}");
    }
    println!("{report}");
    Ok(())
}

async fn run_certs(args: CertsArgs) -> anyhow::Result<()> {
    let minted = certs::mint(&args.namespace)?;
    if args.print {
        print!("{}", certs::render(&minted)?);
        return Ok(());
    }
    let client = client(&args.cluster).await?;
    certs::install(&client, &args.namespace, &minted).await?;
    println!(
        "wrote Secret {}/{} (a certificate for {}) and the caBundle of the webhook configurations {}; running pods reload it within 10 s of the kubelet updating the mounted Secret",
        args.namespace,
        certs::SECRET,
        minted.names.join(", "),
        certs::NAME
    );
    Ok(())
}

async fn run_explain(args: ExplainArgs) -> anyhow::Result<()> {
    let (client, namespace, name) = target(&args.target).await?;
    let inputs = explain::read_inputs(&client, &namespace, &name, &args.sluice_namespace).await?;
    match args.output {
        None => print!("{}", explain::render(&inputs)),
        Some(d) => print!("{}", status::encode(&explain::report(&inputs), d)?),
    }
    Ok(())
}

async fn run_serve(args: ServeArgs) -> anyhow::Result<()> {
    let tls = crate::webhook::load_tls(&args.tls_cert, &args.tls_key)?;
    let client = client(&ClusterArgs {
        kubeconfig: args.kubeconfig.clone(),
        context: None,
    })
    .await?;
    let instance = std::env::var("HOSTNAME").unwrap_or_else(|_| "sluice".into());
    let sluice = crate::serve::Sluice::start_with(
        crate::serve::Config {
            client,
            tls,
            tls_files: Some((args.tls_cert.clone(), args.tls_key.clone())),
            webhook_addr: args.webhook_addr,
            admin_addr: Some(args.admin_addr),
            prometheus_url: args.prometheus_url,
            namespace: args.namespace,
            instance,
            lease_duration: args.lease_duration,
            shutdown_delay: args.shutdown_delay,
        },
        &args.prometheus,
    )
    .await?;
    tracing::info!(
        "serving the webhook on {}; the controller runs while this replica holds the lease",
        sluice.webhook_addr()
    );
    shutdown_signal().await;
    tracing::info!("stopping: draining admissions and the controller");
    sluice.shutdown().await;
    Ok(())
}

/// Ctrl-C or SIGTERM (what the kubelet sends).
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

async fn run_status(args: StatusArgs) -> anyhow::Result<()> {
    let name = args
        .target
        .as_deref()
        .map(control::parse_target)
        .transpose()?;
    let client = client(&args.cluster).await?;
    let scope = status::Scope {
        namespace: match (args.namespace, args.all_namespaces) {
            (Some(ns), _) => Some(ns),
            (None, true) => None,
            (None, false) => Some(client.default_namespace().to_string()),
        },
        name,
    };
    if args.watch {
        status::watch(&client, &scope, args.output, args.until_done).await
    } else {
        status::show(&client, &scope, args.output).await
    }
}

fn run_docs(args: DocsArgs) -> anyhow::Result<()> {
    match args.topic {
        DocsTopic::Annotations => print!("{}", docs::annotations()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_lease_duration_is_at_least_a_second_and_says_why_not() {
        let parse = |v: &str| Cli::try_parse_from(["sluice", "serve", "--lease-duration", v]);
        let Command::Serve(args) = parse("2s").unwrap().command else {
            panic!("serve")
        };
        assert_eq!(args.lease_duration, Duration::from_secs(2));
        let err = parse("500ms").unwrap_err().to_string();
        assert!(err.contains("shorter than 1s"), "{err}");
        assert!(
            parse("soon")
                .unwrap_err()
                .to_string()
                .contains("not a duration")
        );
    }

    #[test]
    fn the_shutdown_delay_defaults_to_5s_and_must_fit_the_pods_grace_period() {
        let parse = |extra: &[&str]| {
            Cli::try_parse_from(["sluice", "serve"].iter().chain(extra)).map(|c| match c.command {
                Command::Serve(args) => args.shutdown_delay,
                _ => panic!("serve"),
            })
        };
        assert_eq!(parse(&[]).unwrap(), Duration::from_secs(5));
        assert_eq!(parse(&["--shutdown-delay", "0s"]).unwrap(), Duration::ZERO);
        let err = parse(&["--shutdown-delay", "1m"]).unwrap_err().to_string();
        assert!(err.contains("longer than 20s"), "{err}");
    }

    #[test]
    fn run_as_kubectl_sluice_the_usage_says_kubectl_sluice() {
        use std::ffi::OsStr;
        assert_eq!(
            program_name(OsStr::new("/usr/local/bin/kubectl-sluice")),
            "kubectl sluice"
        );
        assert_eq!(program_name(OsStr::new("kubectl-sluice")), "kubectl sluice");
        assert_eq!(program_name(OsStr::new("/usr/bin/sluice")), "sluice");
        assert_eq!(program_name(OsStr::new("")), "sluice");
    }

    #[test]
    fn status_takes_kubectls_flags_and_until_done_only_with_watch() {
        let cli = Cli::try_parse_from([
            "sluice",
            "status",
            "deploy/web",
            "-n",
            "shop",
            "-o",
            "wide",
            "-w",
            "--until-done",
            "--context",
            "prod",
            "--kubeconfig",
            "/k",
        ])
        .unwrap();
        let Command::Status(args) = cli.command else {
            panic!("{cli:?}")
        };
        assert_eq!(args.output, Some(status::Output::Wide));
        assert!(args.watch && args.until_done);
        assert_eq!(args.cluster.context.as_deref(), Some("prod"));
        assert_eq!(args.target.as_deref(), Some("deploy/web"));
        for bad in [
            &["sluice", "status", "--until-done"][..],
            &["sluice", "status", "-n", "shop", "-A"],
            &["sluice", "status", "-o", "table"],
            &["sluice", "explain", "web", "-o", "wide"],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
        }
        for ok in [
            &["sluice", "status", "-A", "-o", "json"][..],
            &[
                "sluice",
                "explain",
                "deploy/web",
                "-o",
                "yaml",
                "--context",
                "prod",
            ],
            &["sluice", "pause", "web", "--context", "prod"],
            &["sluice", "docs", "annotations"],
        ] {
            assert!(Cli::try_parse_from(ok).is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn promote_takes_force_and_every_verb_a_namespace_and_a_timeout() {
        let cli = Cli::try_parse_from([
            "sluice",
            "promote",
            "deploy/web",
            "-n",
            "shop",
            "--force",
            "--timeout",
            "5s",
        ])
        .unwrap();
        let Command::Promote(args) = cli.command else {
            panic!("{cli:?}")
        };
        assert!(args.force);
        assert_eq!(args.control.timeout, Duration::from_secs(5));
        assert_eq!(args.control.target.namespace.as_deref(), Some("shop"));
        for verb in ["pause", "resume", "abort", "retry"] {
            assert!(
                Cli::try_parse_from(["sluice", verb, "web"]).is_ok(),
                "{verb}"
            );
            assert!(
                Cli::try_parse_from(["sluice", verb, "web", "--force"]).is_err(),
                "--force is promote's only"
            );
        }
    }
}
