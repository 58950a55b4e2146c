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
        ("--prometheus-secret", "SLUICE_PROMETHEUS_SECRET"),
        ("--prometheus-ca", "SLUICE_PROMETHEUS_CA"),
        ("--prometheus-timeout", "SLUICE_PROMETHEUS_TIMEOUT"),
        ("--namespace", "SLUICE_NAMESPACE"),
    ] {
        assert!(
            help.contains(flag) && help.contains(env),
            "{flag} / {env} in:\n{help}"
        );
    }
}

#[test]
fn the_kubectl_plugin_is_the_same_cli_named_kubectl_sluice() {
    let help = |bin: &str| {
        let out = Command::new(bin)
            .arg("--help")
            .output()
            .expect("the binary runs");
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let plugin = help(env!("CARGO_BIN_EXE_kubectl-sluice"));
    let sluice = help(env!("CARGO_BIN_EXE_sluice"));
    assert!(
        plugin.contains("Usage: kubectl sluice [OPTIONS] <COMMAND>"),
        "{plugin}"
    );
    assert!(
        sluice.contains("Usage: sluice [OPTIONS] <COMMAND>"),
        "{sluice}"
    );
    assert_eq!(
        plugin.replace("kubectl sluice", "sluice"),
        sluice,
        "the same commands and flags"
    );
}

#[test]
fn docs_annotations_prints_a_markdown_table_of_every_setting() {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["docs", "annotations"])
        .output()
        .expect("sluice runs");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let rows = text
        .lines()
        .filter(|l| l.starts_with("| `sluice.dev/"))
        .count();
    assert_eq!(
        rows,
        sluice::policy::keys::Setting::ALL.len() + sluice::policy::keys::Control::ALL.len(),
        "{text}"
    );
}
