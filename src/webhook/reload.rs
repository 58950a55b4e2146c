//! Certificate rotation without a restart: the webhook's certificate and key files are
//! re-read when they change, and new TLS handshakes use the new pair.
//!
//! ```text
//! every `every`: read cert + key ─► same bytes as last time? ─► nothing
//!                                   └─ changed ─► load_tls ─┬─ ok ─► RustlsConfig::reload_from_config
//!                                                           └─ bad ─► keep serving the old pair, warn
//! ```
//!
//! Polling rather than inotify: a Secret mounted in a pod is updated by the kubelet through a
//! symlink swap (`..data`), which file-event watchers miss unless they follow it, and a poll of
//! two small files every few seconds costs nothing. A pair caught half-written (the key of the
//! new certificate not yet there) fails to load and is retried at the next poll; the old pair
//! keeps serving meanwhile. Connections already open keep their session.

use std::path::PathBuf;
use std::time::Duration;

use axum_server::tls_rustls::RustlsConfig;

use super::server::load_tls;
use crate::controller::run::Task;

/// How often the files are checked when serving.
pub const EVERY: Duration = Duration::from_secs(10);

/// The two files, as last read.
fn read_pair(cert: &PathBuf, key: &PathBuf) -> Option<(Vec<u8>, Vec<u8>)> {
    Some((std::fs::read(cert).ok()?, std::fs::read(key).ok()?))
}

/// Watches `cert` and `key` every `every` and reloads `config` when they change.
pub fn watch(config: RustlsConfig, cert: PathBuf, key: PathBuf, every: Duration) -> Task {
    Task::spawn(async move {
        let mut last = read_pair(&cert, &key);
        loop {
            tokio::time::sleep(every).await;
            let now = read_pair(&cert, &key);
            if now.is_none() || now == last {
                continue;
            }
            match load_tls(&cert, &key) {
                Ok(server_config) => {
                    config.reload_from_config(server_config);
                    last = now;
                    tracing::info!(cert = %cert.display(), "webhook certificate reloaded");
                }
                Err(e) => {
                    tracing::warn!("{e}; still serving the previous certificate, retrying");
                }
            }
        }
    })
}
