//! Logging set-up: `tracing` to stderr, filtered by `RUST_LOG` (default `info` for Sluice,
//! `warn` for everything else), so that a sandbox run shows what Sluice does and little else.
//!
//! Human-readable text by default; one JSON object per line with `--log-format json` (for log
//! pipelines), each carrying the fields of the spans it happened in: a reconcile's lines carry
//! the rollout's `namespace`, `deployment` (its name) and `revision`.

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// For people: `2026-11-27T12:00:00Z INFO rollout{namespace=shop deployment=podinfo ...}: ...`.
    #[default]
    Text,
    /// One JSON object per line, with the span fields.
    Json,
}

/// Installs the global text subscriber once; later calls are ignored (tests call it freely).
pub fn init() {
    init_with(LogFormat::Text);
}

/// Installs the global subscriber in `format` once; later calls are ignored.
pub fn init_with(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,sluice=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}
