//! `sluice-scale`: the scale benchmarks of BENCHMARKS.md (`sluice::sandbox::scale`). Build in
//! release, then run from the repository root:
//!
//! ```text
//! cargo build --release --bins && target/release/sluice-scale --deployments 5000 --namespaces 50
//! ```
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use sluice::sandbox::scale::{ScaleOptions, render, run};

/// Builds a fleet of managed Deployments in the sandbox, runs `sluice serve` against it as a
/// separate process, and measures it at rest, reacting, and in motion.
#[derive(Parser, Debug)]
#[command(name = "sluice-scale")]
struct Args {
    /// Managed Deployments in the fleet.
    #[arg(long, default_value_t = 5000)]
    deployments: usize,
    /// Namespaces they are spread over.
    #[arg(long, default_value_t = 50)]
    namespaces: usize,
    /// How long to measure idleness.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    idle: Duration,
    /// Concurrent rollouts of the motion stage (0 skips it).
    #[arg(long, default_value_t = 200)]
    rollouts: usize,
    /// Analysis interval of every Deployment.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// How long a simulated pod takes to become ready.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    ready_delay: Duration,
    /// Requests per second sent to each rolling app.
    #[arg(long, default_value_t = 20.0)]
    rps: f64,
    /// The sluice binary to run as `sluice serve` (default: beside this one).
    #[arg(long)]
    sluice: Option<PathBuf>,
    /// Concurrent creates while building the fleet.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// End Sluice's watch streams after this long while the rollouts run, so that its
    /// re-watches (every 290 s against kube-apiserver) fall among their steps.
    #[arg(long, value_parser = humantime::parse_duration)]
    watch_lifetime: Option<Duration>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    sluice::telemetry::init();
    let sluice_bin = args.sluice.unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("sluice")))
            .unwrap_or_else(|| PathBuf::from("sluice"))
    });
    let opts = ScaleOptions {
        deployments: args.deployments,
        namespaces: args.namespaces,
        idle: args.idle,
        rollouts: args.rollouts,
        interval: args.interval,
        ready_delay: args.ready_delay,
        rps: args.rps,
        sluice_bin,
        concurrency: args.concurrency.max(1),
        watch_lifetime: args.watch_lifetime,
    };
    match run(opts).await {
        Ok(report) => {
            println!("{}", render(&report));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sluice-scale: {e}");
            ExitCode::FAILURE
        }
    }
}
