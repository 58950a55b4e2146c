//! The `sluice` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    /// Run a full rollout on an in-process cluster.
    Sandbox,
}

/// Parses the command line and runs the command; the process exit code.
pub fn main() -> ExitCode {
    crate::tls::install_crypto_provider();
    crate::telemetry::init();
    let cli = Cli::parse();
    match cli.command {
        Command::Sandbox => {
            eprintln!("sluice sandbox: not wired yet (base commit)");
            ExitCode::FAILURE
        }
    }
}
