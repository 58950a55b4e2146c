//! The `sluice` binary as an operator runs it.

use std::process::Command;

#[test]
fn serve_refuses_to_start_without_its_certificate_and_names_the_file() {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "serve",
            "--tls-cert",
            "/nonexistent/tls.crt",
            "--tls-key",
            "/nonexistent/tls.key",
        ])
        .output()
        .expect("sluice runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/tls.crt"), "{stderr}");
    assert!(stderr.contains("mount the Secret"), "{stderr}");
}

#[test]
fn serve_names_every_flag_with_its_environment_variable() {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["serve", "--help"])
        .output()
        .expect("sluice runs");
    let help = String::from_utf8_lossy(&out.stdout);
    for (flag, env) in [
        ("--kubeconfig", "SLUICE_KUBECONFIG"),
        ("--tls-cert", "SLUICE_TLS_CERT"),
        ("--tls-key", "SLUICE_TLS_KEY"),
        ("--webhook-addr", "SLUICE_WEBHOOK_ADDR"),
        ("--admin-addr", "SLUICE_ADMIN_ADDR"),
        ("--prometheus-url", "SLUICE_PROMETHEUS_URL"),
        ("--namespace", "SLUICE_NAMESPACE"),
    ] {
        assert!(
            help.contains(flag) && help.contains(env),
            "{flag} / {env} in:\n{help}"
        );
    }
}
