//! What every sandbox test shares: start-up, and finding the real binaries the tests use.
//! A missing binary fails the test under `CI=true` (with the command that installs it) and
//! skips it with one printed line otherwise.

use std::path::PathBuf;

use sluice::sandbox::MetricsBackend;

/// Installs the crypto provider and logging.
pub fn init() {
    sluice::tls::install_crypto_provider();
    sluice::telemetry::init();
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A real binary the test needs, or `None` (after one skip line) outside CI.
pub fn require(name: &str, install: &str) -> Option<PathBuf> {
    match on_path(name) {
        Some(path) => Some(path),
        None if in_ci() => panic!("`{name}` is not installed and CI=true: {install}"),
        None => {
            eprintln!("skipped: `{name}` is not installed ({install})");
            None
        }
    }
}

/// kubectl, for the tests that drive the sandbox the way users do.
pub fn kubectl() -> Option<PathBuf> {
    require("kubectl", "install kubectl >= 1.30 on PATH")
}

/// The metrics backend for a full-stack test: the real Prometheus when it can be had.
pub fn metrics_backend() -> Option<MetricsBackend> {
    require("prometheus", "apt-get install -y prometheus").map(|_| MetricsBackend::Auto)
}
