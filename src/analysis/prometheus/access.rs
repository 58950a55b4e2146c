//! How Sluice authenticates to Prometheus and which CAs it trusts: credentials read from a
//! Secret (as Flagger's MetricTemplate `secretRef`), an extra CA bundle from a file, and the
//! re-read of the Secret when Prometheus refuses the credentials.
//!
//! ```text
//! --prometheus-secret NAME ─► read_credentials ─► credentials_from_data ─► Credentials
//!                              (start: an error stops Sluice)               │ sent on each query
//! Prometheus answers 401/403 ─► Access::reload_if_due (at most once per RELOAD_EVERY) ─┘
//! --prometheus-ca FILE ─────► load_ca ─► CaBundle ─► trust roots (added to the system's)
//! ```
//!
//! The decisions are pure and tested without a cluster: which credentials a Secret's keys make
//! ([`credentials_from_data`]), and whether a re-read is due ([`reload_due`]). Credentials are
//! never logged: [`Credentials`]' `Debug` shows only the kind and the user name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;

/// The Secret key of a bearer token (Flagger's `token`).
pub const TOKEN_KEY: &str = "token";
/// The Secret key of the basic-auth user name (Flagger's `username`).
pub const USERNAME_KEY: &str = "username";
/// The Secret key of the basic-auth password (Flagger's `password`).
pub const PASSWORD_KEY: &str = "password";

/// The shortest time between two re-reads of the Secret after Prometheus refused the
/// credentials: a rotation is picked up on the next query after it, and a Prometheus that keeps
/// refusing costs at most one API call per this period (shorter than any analysis interval in
/// practice, so at most one per interval).
pub const RELOAD_EVERY: Duration = Duration::from_secs(10);

/// What Sluice sends Prometheus to authenticate.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Credentials {
    /// Nothing (no `--prometheus-secret`).
    #[default]
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// `Authorization: Basic …`.
    Basic { username: String, password: String },
}

impl std::fmt::Debug for Credentials {
    /// Never the token or the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Credentials::Basic { username, .. } => {
                write!(
                    f,
                    "Basic {{ username: {username:?}, password: <redacted> }}"
                )
            }
        }
    }
}

impl Credentials {
    /// Adds these credentials to a request.
    pub fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Credentials::None => request,
            Credentials::Bearer(token) => request.bearer_auth(token),
            Credentials::Basic { username, password } => {
                request.basic_auth(username, Some(password))
            }
        }
    }
}

/// A Secret in Sluice's namespace, named by `--prometheus-secret`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretRef {
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The command that creates the Secret, for messages.
fn create_hint(secret: &SecretRef) -> String {
    format!(
        "create it with `kubectl -n {ns} create secret generic {name} --from-literal={TOKEN_KEY}=…` \
         (bearer token) or `--from-literal={USERNAME_KEY}=… --from-literal={PASSWORD_KEY}=…` (basic auth)",
        ns = secret.namespace,
        name = secret.name
    )
}

/// Why Prometheus' credentials or CA could not be set up; each names the Secret or file, the
/// key, and what to create.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("--prometheus-secret: Secret {secret} does not exist; {hint}", hint = create_hint(secret))]
    SecretNotFound { secret: SecretRef },
    #[error(
        "--prometheus-secret: cannot read Secret {secret}: {reason}; Sluice's Role must grant `get` on secrets with resourceNames [{name}] (deploy/base/rbac.yaml)",
        name = secret.name
    )]
    SecretUnreadable { secret: SecretRef, reason: String },
    #[error(
        "--prometheus-secret: Secret {secret} has key `{USERNAME_KEY}` but no `{PASSWORD_KEY}`; add `{PASSWORD_KEY}` (basic auth) or use `{TOKEN_KEY}` alone (bearer)"
    )]
    MissingPassword { secret: SecretRef },
    #[error(
        "--prometheus-secret: Secret {secret} has key `{PASSWORD_KEY}` but no `{USERNAME_KEY}`; add `{USERNAME_KEY}` (basic auth) or use `{TOKEN_KEY}` alone (bearer)"
    )]
    MissingUsername { secret: SecretRef },
    #[error(
        "--prometheus-secret: Secret {secret} has both `{TOKEN_KEY}` and `{USERNAME_KEY}`/`{PASSWORD_KEY}`; keep one: `{TOKEN_KEY}` for a bearer token, or `{USERNAME_KEY}` and `{PASSWORD_KEY}` for basic auth"
    )]
    Ambiguous { secret: SecretRef },
    #[error(
        "--prometheus-secret: Secret {secret} has neither `{TOKEN_KEY}` nor `{USERNAME_KEY}` and `{PASSWORD_KEY}`; {hint}",
        hint = create_hint(secret)
    )]
    NoCredentials { secret: SecretRef },
    #[error(
        "--prometheus-secret: key `{key}` of Secret {secret} is empty or not UTF-8 text; put the value in it"
    )]
    BadValue {
        secret: SecretRef,
        key: &'static str,
    },
    #[error("--prometheus-ca {}: {reason}; give a PEM file of the CA that signed Prometheus' certificate", path.display())]
    BadCa { path: PathBuf, reason: String },
}

/// The credentials a Secret's `data` makes: `token` alone is a bearer token; `username` and
/// `password` are basic auth; both kinds, half of basic auth, or neither is an error naming the
/// Secret and the key. Trailing newlines are dropped (`echo` leaves one in a file).
pub fn credentials_from_data(
    secret: &SecretRef,
    data: &BTreeMap<String, Vec<u8>>,
) -> Result<Credentials, AccessError> {
    let value = |key: &'static str| -> Result<Option<String>, AccessError> {
        let Some(raw) = data.get(key) else {
            return Ok(None);
        };
        let bad = || AccessError::BadValue {
            secret: secret.clone(),
            key,
        };
        let text = std::str::from_utf8(raw).map_err(|_| bad())?;
        let text = text.trim_end_matches(['\n', '\r']);
        if text.is_empty() {
            return Err(bad());
        }
        Ok(Some(text.to_string()))
    };
    let secret = || secret.clone();
    let has = |key: &str| data.contains_key(key);
    if has(TOKEN_KEY) && (has(USERNAME_KEY) || has(PASSWORD_KEY)) {
        return Err(AccessError::Ambiguous { secret: secret() });
    }
    if let Some(token) = value(TOKEN_KEY)? {
        return Ok(Credentials::Bearer(token));
    }
    match (value(USERNAME_KEY)?, value(PASSWORD_KEY)?) {
        (Some(username), Some(password)) => Ok(Credentials::Basic { username, password }),
        (Some(_), None) => Err(AccessError::MissingPassword { secret: secret() }),
        (None, Some(_)) => Err(AccessError::MissingUsername { secret: secret() }),
        (None, None) => Err(AccessError::NoCredentials { secret: secret() }),
    }
}

/// Reads the Secret and decides its credentials ([`credentials_from_data`]).
pub async fn read_credentials(
    client: &kube::Client,
    secret: &SecretRef,
) -> Result<Credentials, AccessError> {
    let api = kube::Api::<Secret>::namespaced(client.clone(), &secret.namespace);
    let found = api
        .get_opt(&secret.name)
        .await
        .map_err(|e| AccessError::SecretUnreadable {
            secret: secret.clone(),
            reason: e.to_string(),
        })?
        .ok_or_else(|| AccessError::SecretNotFound {
            secret: secret.clone(),
        })?;
    let data = found
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    credentials_from_data(secret, &data)
}

/// The CA certificates of `--prometheus-ca`, read at start, added to the trust roots.
#[derive(Clone, Debug)]
pub struct CaBundle {
    /// The file they came from, named by TLS failures.
    pub path: PathBuf,
    /// At least one.
    pub certs: Vec<reqwest::Certificate>,
}

/// Reads the PEM bundle at `path`: an unreadable file or one without a certificate is an
/// error naming it.
pub fn load_ca(path: &Path) -> Result<CaBundle, AccessError> {
    let bad = |reason: String| AccessError::BadCa {
        path: path.to_path_buf(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| bad(format!("cannot read it ({e})")))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| bad(format!("not a PEM bundle ({e})")))?;
    if certs.is_empty() {
        return Err(bad("it holds no CERTIFICATE block".into()));
    }
    Ok(CaBundle {
        path: path.to_path_buf(),
        certs,
    })
}

/// Whether the Secret may be read again: never read since the start, or at least `every` ago.
pub fn reload_due(last: Option<Instant>, now: Instant, every: Duration) -> bool {
    last.is_none_or(|last| now.saturating_duration_since(last) >= every)
}

/// The credentials in use and where to re-read them from.
#[derive(Debug, Default)]
pub struct Access {
    current: RwLock<Credentials>,
    source: Option<Source>,
}

struct Source {
    client: kube::Client,
    secret: SecretRef,
    every: Duration,
    last_reload: tokio::sync::Mutex<Option<Instant>>,
    /// The last reload's problem, logged once rather than on every refusal.
    last_problem: Mutex<Option<String>>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("secret", &self.secret)
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

impl Access {
    /// No credentials.
    pub fn none() -> Access {
        Access::default()
    }

    /// Fixed credentials, never re-read.
    pub fn fixed(credentials: Credentials) -> Access {
        Access {
            current: RwLock::new(credentials),
            source: None,
        }
    }

    /// Reads `secret` now (an error is a start error) and re-reads it when Prometheus refuses
    /// the credentials, at most once per `every` ([`RELOAD_EVERY`] in `sluice serve`).
    pub async fn from_secret(
        client: kube::Client,
        secret: SecretRef,
        every: Duration,
    ) -> Result<Access, AccessError> {
        let credentials = read_credentials(&client, &secret).await?;
        Ok(Access {
            current: RwLock::new(credentials),
            source: Some(Source {
                client,
                secret,
                every,
                last_reload: tokio::sync::Mutex::new(Some(Instant::now())),
                last_problem: Mutex::new(None),
            }),
        })
    }

    /// The Secret the credentials come from, if any.
    pub fn secret(&self) -> Option<&SecretRef> {
        self.source.as_ref().map(|s| &s.secret)
    }

    /// The credentials to send now.
    pub fn current(&self) -> Credentials {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// After a refusal: re-reads the Secret if it has one and a re-read is due, and answers
    /// whether the credentials changed (then the query is worth one more try). A Secret that
    /// became unreadable or invalid keeps the credentials in use, and is logged once.
    pub async fn reload_if_due(&self) -> bool {
        let Some(source) = &self.source else {
            return false;
        };
        let mut last = source.last_reload.lock().await;
        let now = Instant::now();
        if !reload_due(*last, now, source.every) {
            return false;
        }
        *last = Some(now);
        let read = read_credentials(&source.client, &source.secret).await;
        let mut problem = source
            .last_problem
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match read {
            Ok(fresh) => {
                *problem = None;
                let mut current = self
                    .current
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let changed = *current != fresh;
                if changed {
                    tracing::info!(
                        "Prometheus refused the credentials; re-read Secret {}: they changed, retrying",
                        source.secret
                    );
                    *current = fresh;
                }
                changed
            }
            Err(e) => {
                let message = e.to_string();
                if problem.as_deref() != Some(&message) {
                    tracing::warn!(
                        "Prometheus refused the credentials and re-reading them failed; keeping the ones in use: {message}"
                    );
                    *problem = Some(message);
                }
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> SecretRef {
        SecretRef {
            namespace: "sluice-system".into(),
            name: "prom-auth".into(),
        }
    }

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    fn decide(pairs: &[(&str, &str)]) -> Result<Credentials, AccessError> {
        credentials_from_data(&secret(), &data(pairs))
    }

    #[test]
    fn a_token_alone_is_a_bearer_token_without_its_trailing_newline() {
        assert_eq!(
            decide(&[("token", "abc\n")]).unwrap(),
            Credentials::Bearer("abc".into())
        );
    }

    #[test]
    fn username_and_password_are_basic_auth() {
        assert_eq!(
            decide(&[("username", "sluice"), ("password", "pw ")]).unwrap(),
            Credentials::Basic {
                username: "sluice".into(),
                password: "pw ".into()
            }
        );
    }

    #[test]
    fn other_keys_are_ignored() {
        assert_eq!(
            decide(&[("token", "abc"), ("ca.crt", "…")]).unwrap(),
            Credentials::Bearer("abc".into())
        );
    }

    #[test]
    fn a_token_and_basic_auth_together_are_refused_naming_both() {
        for pairs in [
            &[("token", "t"), ("username", "u"), ("password", "p")][..],
            &[("token", "t"), ("password", "p")][..],
        ] {
            let err = decide(pairs).unwrap_err();
            assert!(matches!(err, AccessError::Ambiguous { .. }), "{err}");
            let msg = err.to_string();
            assert!(msg.contains("sluice-system/prom-auth"), "{msg}");
            assert!(msg.contains("keep one"), "{msg}");
        }
    }

    #[test]
    fn half_of_basic_auth_names_the_missing_key() {
        let err = decide(&[("username", "u")]).unwrap_err();
        assert!(err.to_string().contains("no `password`"), "{err}");
        let err = decide(&[("password", "p")]).unwrap_err();
        assert!(err.to_string().contains("no `username`"), "{err}");
    }

    #[test]
    fn no_credential_key_says_how_to_create_the_secret() {
        let err = decide(&[("other", "x")]).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, AccessError::NoCredentials { .. }), "{msg}");
        assert!(
            msg.contains("kubectl -n sluice-system create secret generic prom-auth"),
            "{msg}"
        );
    }

    #[test]
    fn an_empty_or_binary_value_names_its_key() {
        let err = decide(&[("token", "\n")]).unwrap_err();
        assert!(
            matches!(err, AccessError::BadValue { key: "token", .. }),
            "{err}"
        );
        let mut binary = data(&[("username", "u")]);
        binary.insert("password".into(), vec![0xff, 0xfe]);
        let err = credentials_from_data(&secret(), &binary).unwrap_err();
        assert!(err.to_string().contains("key `password`"), "{err}");
    }

    #[test]
    fn debug_never_shows_the_token_or_the_password() {
        let shown = format!(
            "{:?} {:?}",
            Credentials::Bearer("tok-123".into()),
            Credentials::Basic {
                username: "sluice".into(),
                password: "pw-456".into()
            }
        );
        assert!(
            !shown.contains("tok-123") && !shown.contains("pw-456"),
            "{shown}"
        );
        assert!(shown.contains("sluice"), "{shown}");
    }

    #[test]
    fn a_reload_is_due_first_and_then_once_per_period() {
        let t0 = Instant::now();
        let every = Duration::from_secs(10);
        assert!(reload_due(None, t0, every));
        assert!(!reload_due(Some(t0), t0 + Duration::from_secs(9), every));
        assert!(reload_due(Some(t0), t0 + every, every));
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let err = load_ca(&path).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("--prometheus-ca") && msg.contains("ca.pem"),
            "{msg}"
        );
        let missing = load_ca(&dir.path().join("absent.pem")).unwrap_err();
        assert!(missing.to_string().contains("cannot read it"), "{missing}");
    }

    #[tokio::test]
    async fn fixed_credentials_are_never_reloaded() {
        let access = Access::fixed(Credentials::Bearer("t".into()));
        assert!(!access.reload_if_due().await);
        assert_eq!(access.current(), Credentials::Bearer("t".into()));
        assert!(access.secret().is_none());
    }
}
