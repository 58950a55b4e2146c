//! The `sluice` command line: one binary, one subcommand per job (DESIGN §1).
//! This is the only place that uses `anyhow`; everything below it has typed errors.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::sandbox::embedded::Embedded;
use crate::sandbox::{self, MetricsBackend, Sandbox, SandboxOptions};

#[derive(Parser, Debug)]
#[command(
    name = "sluice",
    version,
    about = "Progressive delivery for plain Kubernetes Deployments"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start an in-process cluster (API server, workload and mesh simulators, Prometheus) and run
    /// the demo on it; with --hold, keep it up for kubectl and the end-to-end tests instead.
    Sandbox(SandboxArgs),
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

/// Parses the command line and runs the command; the process exit code.
pub fn main() -> ExitCode {
    crate::tls::install_crypto_provider();
    crate::telemetry::init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Sandbox(args) => run_sandbox(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
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
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
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
