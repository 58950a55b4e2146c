//! `deploy/`, the install manifests: pure checks over the parsed YAML (the RBAC grants equal
//! `sluice::rbac::API_CALLS`, no wildcards, the Deployment's hardening and probes, the Service,
//! the PodDisruptionBudget, the policy ConfigMap's commented defaults), then an unmodified
//! kubectl installing `deploy/` into a fresh sandbox API server and rendering the cert-manager
//! overlay; last, a canary end to end through the installed objects (`kubectl apply -k
//! deploy/`, `sluice certs`, `sluice serve` as the service account with the Secret's files,
//! the example app). Without kubectl, those fail under `CI=true` and are skipped with one line
//! otherwise.

#[path = "sandbox/support.rs"]
#[allow(dead_code)]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Service};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;
use sluice::policy::keys::Setting;
use sluice::policy::settings::{self, Layers, Level, Settings};
use sluice::rbac::{self, Grant, Scope};

const NAMESPACE: &str = "sluice-system";
const NAME: &str = "sluice";
const POD_LABEL: (&str, &str) = ("app.kubernetes.io/name", "sluice");

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// YAML options for manifests: comments are skipped rather than kept (serde-saphyr buffers
/// only a few dozen comment lines after a key, and the policy ConfigMap is mostly comments).
fn yaml_options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.emit_comments = false;
    options
}

fn yaml(text: &str) -> Value {
    serde_saphyr::from_str_with_options(text, yaml_options()).unwrap()
}

fn yaml_docs(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple_with_options(text, yaml_options()).unwrap()
}

/// The objects of the kustomization in `dir`: its `resources`, files or folders (followed),
/// in order. Patches and image rewrites are kubectl's business (tested below with kubectl).
fn manifests(dir: &Path) -> Vec<Value> {
    let k = yaml(&read(&dir.join("kustomization.yaml")));
    let mut out = Vec::new();
    for r in k["resources"].as_array().expect("a resources list") {
        let path = dir.join(r.as_str().expect("a resource path"));
        if path.is_dir() {
            out.extend(manifests(&path));
        } else {
            let docs: Vec<Value> =
                serde_saphyr::from_multiple_with_options(&read(&path), yaml_options())
                    .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()));
            out.extend(docs.into_iter().filter(|d| !d.is_null()));
        }
    }
    out
}

fn installed() -> Vec<Value> {
    manifests(&deploy_dir())
}

/// (kind, namespace, name) of every object.
fn identities(objects: &[Value]) -> BTreeSet<(String, String, String)> {
    objects
        .iter()
        .map(|o| {
            let s = |p: &str| {
                o.pointer(p)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            (s("/kind"), s("/metadata/namespace"), s("/metadata/name"))
        })
        .collect()
}

/// The one object of `kind` named `name`, typed.
fn one<T: serde::de::DeserializeOwned>(objects: &[Value], kind: &str, name: &str) -> T {
    let found: Vec<&Value> = objects
        .iter()
        .filter(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "expected one {kind} {name} in deploy/");
    serde_json::from_value(found[0].clone())
        .unwrap_or_else(|e| panic!("{kind} {name} does not parse: {e}"))
}

fn of_kind<'a>(objects: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    objects.iter().filter(move |o| o["kind"] == kind)
}

fn container(d: &Deployment) -> Container {
    let spec = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    assert_eq!(spec.containers.len(), 1, "one container");
    spec.containers[0].clone()
}

// ---------------------------------------------------------------------------------------------
// RBAC

#[test]
fn installs_the_namespace_service_account_and_every_piece_the_issue_lists() {
    let objects = installed();
    let ids = identities(&objects);
    for (kind, ns, name) in [
        ("Namespace", "", NAMESPACE),
        ("ServiceAccount", NAMESPACE, NAME),
        ("ClusterRole", "", NAME),
        ("ClusterRoleBinding", "", NAME),
        ("Role", NAMESPACE, NAME),
        ("RoleBinding", NAMESPACE, NAME),
        ("ConfigMap", NAMESPACE, "sluice-policy"),
        ("Deployment", NAMESPACE, NAME),
        ("Service", NAMESPACE, NAME),
        ("PodDisruptionBudget", NAMESPACE, NAME),
        ("MutatingWebhookConfiguration", "", NAME),
        ("ValidatingWebhookConfiguration", "", NAME),
    ] {
        assert!(
            ids.contains(&(kind.into(), ns.into(), name.into())),
            "deploy/ lacks {kind} {ns}/{name}; it has {ids:?}"
        );
    }
    assert_eq!(ids.len(), 12, "nothing else: {ids:?}");
    for o in &objects {
        assert_eq!(
            o["metadata"]["labels"][POD_LABEL.0], POD_LABEL.1,
            "every object is labelled {}={}: {}",
            POD_LABEL.0, POD_LABEL.1, o["metadata"]["name"]
        );
    }
}

#[test]
fn no_role_rule_has_a_wildcard_verb_resource_or_group() {
    let objects = installed();
    for role in of_kind(&objects, "ClusterRole").chain(of_kind(&objects, "Role")) {
        for rule in role["rules"].as_array().unwrap() {
            for field in ["verbs", "resources", "apiGroups", "resourceNames"] {
                for v in rule[field].as_array().into_iter().flatten() {
                    assert!(
                        !v.as_str().unwrap().contains('*'),
                        "{} {}: wildcard in {field}: {rule}",
                        role["kind"],
                        role["metadata"]["name"]
                    );
                }
            }
            assert!(rule.get("nonResourceURLs").is_none(), "{rule}");
        }
    }
}

/// What `deploy/` grants Sluice's ServiceAccount: its ClusterRole (cluster-wide) and its Role
/// (in its namespace).
fn granted(objects: &[Value]) -> BTreeSet<Grant> {
    let cluster: ClusterRole = one(objects, "ClusterRole", NAME);
    let role: Role = one(objects, "Role", NAME);
    assert_eq!(role.metadata.namespace.as_deref(), Some(NAMESPACE));
    let mut grants = rbac::grants_of_rules(
        Scope::Cluster,
        "ClusterRole sluice",
        cluster.rules.as_deref().unwrap_or_default(),
    )
    .unwrap();
    grants.extend(
        rbac::grants_of_rules(
            Scope::OwnNamespace,
            "Role sluice",
            role.rules.as_deref().unwrap_or_default(),
        )
        .unwrap(),
    );
    grants
}

#[test]
fn the_roles_grant_exactly_the_api_calls_sluice_makes() {
    let granted = granted(&installed());
    let required = rbac::required_grants();
    let missing: Vec<String> = required
        .difference(&granted)
        .map(|g| {
            let why = rbac::API_CALLS
                .iter()
                .find(|c| {
                    c.group == g.group && c.resource == g.resource && c.verbs.contains(&&*g.verb)
                })
                .map_or("", |c| c.needed_by);
            format!("{g} (needed by {why})")
        })
        .collect();
    let extra: Vec<String> = granted
        .difference(&required)
        .map(ToString::to_string)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "deploy/base/rbac.yaml and sluice::rbac::API_CALLS differ:\n  missing: {missing:#?}\n  \
         not used by Sluice (remove, or add the call to API_CALLS): {extra:#?}"
    );
}

#[test]
fn the_roles_are_bound_to_the_service_account_sluice_runs_as() {
    let objects = installed();
    let pod = one::<Deployment>(&objects, "Deployment", NAME)
        .spec
        .unwrap()
        .template
        .spec
        .unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some(NAME));
    assert_eq!(
        format!("system:serviceaccount:{NAMESPACE}:{NAME}"),
        sluice::webhook::admit::SLUICE_USER,
        "the webhooks skip the account the manifests run Sluice as"
    );
    let crb: ClusterRoleBinding = one(&objects, "ClusterRoleBinding", NAME);
    let rb: RoleBinding = one(&objects, "RoleBinding", NAME);
    assert_eq!(rb.metadata.namespace.as_deref(), Some(NAMESPACE));
    for (role_ref, subjects, kind) in [
        (&crb.role_ref, &crb.subjects, "ClusterRole"),
        (&rb.role_ref, &rb.subjects, "Role"),
    ] {
        assert_eq!(
            (role_ref.kind.as_str(), role_ref.name.as_str()),
            (kind, NAME)
        );
        let subjects = subjects.as_deref().unwrap_or_default();
        assert_eq!(subjects.len(), 1, "{kind}: only Sluice's account");
        assert_eq!(subjects[0].kind, "ServiceAccount");
        assert_eq!(subjects[0].name, NAME);
        assert_eq!(subjects[0].namespace.as_deref(), Some(NAMESPACE));
    }
}

// ---------------------------------------------------------------------------------------------
// Deployment, Service, PodDisruptionBudget

#[test]
fn the_deployment_runs_two_hardened_replicas_spread_across_nodes() {
    let d: Deployment = one(&installed(), "Deployment", NAME);
    let spec = d.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(2));
    let pod = spec.template.spec.as_ref().unwrap();
    let psc = pod.security_context.as_ref().unwrap();
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(
        psc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
        Some("RuntimeDefault")
    );
    let c = container(&d);
    let sc = c
        .security_context
        .as_ref()
        .expect("a container securityContext");
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(
        sc.capabilities.as_ref().and_then(|c| c.drop.clone()),
        Some(vec!["ALL".to_string()])
    );
    assert_eq!(
        sc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
        Some("RuntimeDefault")
    );
    let res = c.resources.as_ref().expect("resources");
    for set in [&res.requests, &res.limits] {
        let set = set.as_ref().expect("requests and limits");
        assert!(
            set.contains_key("cpu") && set.contains_key("memory"),
            "{set:?}"
        );
    }
    let spread = pod
        .topology_spread_constraints
        .as_deref()
        .unwrap_or_default();
    assert!(
        spread
            .iter()
            .any(|t| t.topology_key == "kubernetes.io/hostname"
                && t.label_selector
                    .as_ref()
                    .and_then(|s| s.match_labels.as_ref())
                    == Some(&BTreeMap::from([(POD_LABEL.0.into(), POD_LABEL.1.into())]))),
        "spread across nodes: {spread:?}"
    );
    let labels = spec.template.metadata.as_ref().unwrap().labels.as_ref();
    assert_eq!(
        labels.and_then(|l| l.get(POD_LABEL.0)).map(String::as_str),
        Some(POD_LABEL.1)
    );
    assert_eq!(c.args, Some(vec!["serve".to_string()]));
}

/// The container port named `name`.
fn port(c: &Container, name: &str) -> i32 {
    c.ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no container port {name}"))
        .container_port
}

#[test]
fn probes_hit_healthz_and_readyz_on_the_admin_port_sluice_serves() {
    let c = container(&one(&installed(), "Deployment", NAME));
    // `sluice serve` defaults: --admin-addr 0.0.0.0:8080, --webhook-addr 0.0.0.0:8443.
    assert_eq!(port(&c, "admin"), 8080);
    assert_eq!(port(&c, "webhook"), 8443);
    for (probe, path) in [
        (&c.liveness_probe, "/healthz"),
        (&c.readiness_probe, "/readyz"),
    ] {
        let get = probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .unwrap_or_else(|| panic!("an HTTP probe of {path}"));
        assert_eq!(get.path.as_deref(), Some(path));
        assert_eq!(get.port, IntOrString::String("admin".into()));
    }
}

#[test]
fn the_tls_secret_is_mounted_where_sluice_serve_reads_it() {
    let d: Deployment = one(&installed(), "Deployment", NAME);
    let pod = d.spec.as_ref().unwrap().template.spec.clone().unwrap();
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.secret.as_ref().and_then(|s| s.secret_name.as_deref()) == Some("sluice-tls"))
        .expect("a volume of Secret sluice-tls");
    let mount = container(&d)
        .volume_mounts
        .into_iter()
        .flatten()
        .find(|m| m.name == volume.name)
        .expect("the TLS volume is mounted");
    // `sluice serve` defaults: --tls-cert /etc/sluice/tls/tls.crt, --tls-key …/tls.key.
    assert_eq!(mount.mount_path, "/etc/sluice/tls");
    assert_eq!(mount.read_only, Some(true));
}

#[test]
fn the_service_is_the_one_the_webhooks_call_and_exposes_metrics() {
    let objects = installed();
    let svc: Service = one(&objects, "Service", NAME);
    let spec = svc.spec.unwrap();
    assert_eq!(
        spec.selector,
        Some(BTreeMap::from([(POD_LABEL.0.into(), POD_LABEL.1.into())]))
    );
    let ports = spec.ports.unwrap_or_default();
    let https = ports.iter().find(|p| p.port == 443).expect("port 443");
    assert_eq!(
        https.target_port,
        Some(IntOrString::String("webhook".into()))
    );
    assert!(
        ports
            .iter()
            .any(|p| p.target_port == Some(IntOrString::String("admin".into()))),
        "a metrics port to the admin endpoint: {ports:?}"
    );
    for kind in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        for hook in of_kind(&objects, kind).flat_map(|c| c["webhooks"].as_array().unwrap()) {
            let service = &hook["clientConfig"]["service"];
            assert_eq!(
                (&service["namespace"], &service["name"], &service["port"]),
                (&NAMESPACE.into(), &NAME.into(), &443.into()),
                "{kind} {}",
                hook["name"]
            );
        }
    }
}

#[test]
fn every_webhook_fails_closed() {
    // DESIGN §7.4: when Sluice cannot answer, a change is refused, never let through unjudged.
    let objects = installed();
    let mut hooks = 0;
    for config in of_kind(&objects, "MutatingWebhookConfiguration")
        .chain(of_kind(&objects, "ValidatingWebhookConfiguration"))
    {
        for hook in config["webhooks"].as_array().unwrap() {
            hooks += 1;
            assert_eq!(
                hook["failurePolicy"], "Fail",
                "{} must set failurePolicy: Fail explicitly",
                hook["name"]
            );
        }
    }
    assert!(hooks >= 2, "both webhooks are installed");
}

#[test]
fn a_stopping_replica_answers_every_call_kube_apiserver_still_waits_for() {
    // A webhook that stops mid-call refuses the Deployment update (failurePolicy: Fail), so
    // every call's timeoutSeconds fits the in-flight grace, and the Pod's grace period covers
    // the default shutdown delay (5 s) plus that grace.
    let objects = installed();
    let grace = sluice::webhook::server::IN_FLIGHT_GRACE.as_secs();
    for config in of_kind(&objects, "MutatingWebhookConfiguration")
        .chain(of_kind(&objects, "ValidatingWebhookConfiguration"))
    {
        for hook in config["webhooks"].as_array().unwrap() {
            let timeout = hook["timeoutSeconds"].as_u64().unwrap_or(10);
            assert!(
                timeout <= grace,
                "{}: timeoutSeconds {timeout} is longer than the {grace} s a stopping replica \
                 gives admissions in flight",
                hook["name"]
            );
        }
    }
    let pod = &of_kind(&objects, "Deployment").next().unwrap()["spec"]["template"]["spec"];
    let period = pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
    assert!(
        period >= 5 + grace + 5,
        "terminationGracePeriodSeconds {period} leaves no room for the 5 s shutdown delay, the \
         {grace} s grace and stopping the controller"
    );
}

#[test]
fn the_webhooks_never_intercept_the_namespace_sluice_is_installed_in() {
    let objects = installed();
    for config in of_kind(&objects, "MutatingWebhookConfiguration")
        .chain(of_kind(&objects, "ValidatingWebhookConfiguration"))
    {
        for hook in config["webhooks"].as_array().unwrap() {
            // The one exception validates the sluice-policy ConfigMap and nothing else there.
            if hook["name"] == "validate-policy.sluice.dev" {
                let conditions = hook["matchConditions"].to_string();
                assert!(conditions.contains("object.metadata.name == 'sluice-policy'"));
                continue;
            }
            let excluded = hook["namespaceSelector"]["matchExpressions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| {
                    e["key"] == "kubernetes.io/metadata.name"
                        && e["operator"] == "NotIn"
                        && e["values"]
                            .as_array()
                            .is_some_and(|v| v.contains(&NAMESPACE.into()))
                });
            assert!(excluded, "{} must skip {NAMESPACE}", hook["name"]);
        }
    }
}

#[test]
fn a_disruption_budget_keeps_one_replica_answering() {
    let pdb = of_kind(&installed(), "PodDisruptionBudget")
        .next()
        .cloned()
        .expect("a PodDisruptionBudget");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"][POD_LABEL.0],
        POD_LABEL.1
    );
}

// ---------------------------------------------------------------------------------------------
// The policy ConfigMap

const POLICY: &str = "base/policy.yaml";

/// The ConfigMap with `# data:` and the lines after it uncommented (`#   ##` notes stay
/// comments), as a person enabling every line would write it.
fn uncommented_policy() -> BTreeMap<String, String> {
    let text = read(&deploy_dir().join(POLICY));
    let (head, tail) = text
        .split_once("\n# data:\n")
        .expect("a commented `# data:` line");
    let mut body = format!("{head}\ndata:\n");
    for l in tail.lines() {
        let l = l
            .strip_prefix("# ")
            .unwrap_or_else(|| panic!("{POLICY}: after `# data:`, every line is commented: {l:?}"));
        body.push_str(l);
        body.push('\n');
    }
    let cm = yaml(&body);
    cm["data"]
        .as_object()
        .expect("uncommented data")
        .iter()
        .map(|(k, v)| {
            let v = v
                .as_str()
                .unwrap_or_else(|| panic!("{k}: {v} is not a string; quote it"));
            (k.clone(), v.to_string())
        })
        .collect()
}

#[test]
fn the_policy_configmap_sets_nothing_as_installed() {
    let objects = installed();
    let cm = of_kind(&objects, "ConfigMap")
        .find(|c| c["metadata"]["name"] == "sluice-policy")
        .unwrap();
    assert_eq!(cm["metadata"]["namespace"], NAMESPACE);
    assert!(
        cm["data"].as_object().is_none_or(|d| d.is_empty()),
        "data must stay commented: {}",
        cm["data"]
    );
}

#[test]
fn the_policy_configmap_names_every_key_and_shows_the_built_in_defaults() {
    let text = read(&deploy_dir().join(POLICY));
    for s in Setting::ALL {
        assert!(
            text.lines().any(|l| {
                let l = l.trim_start_matches(['#', ' ']);
                l.starts_with(&format!("{}:", s.as_str()))
            }),
            "{POLICY} does not mention {s}"
        );
    }
    let shown = uncommented_policy();
    let defaults = Settings::default();
    let mut only_defaults = BTreeMap::new();
    for s in Setting::ALL {
        if let Some(default) = defaults.value_text(s) {
            assert_eq!(
                shown.get(s.as_str()),
                Some(&default),
                "{POLICY} should show {s}'s built-in default"
            );
            only_defaults.insert(s.as_str().to_string(), default);
        }
    }
    let resolved = settings::resolve(&Layers {
        deployment: None,
        namespace: None,
        cluster: Some(&only_defaults),
    })
    .expect("the defaults resolve");
    assert_eq!(resolved.settings, defaults);
}

#[test]
fn every_commented_example_in_the_policy_configmap_is_valid() {
    let errors = settings::validate_annotations(&uncommented_policy(), Level::Cluster);
    assert!(errors.is_empty(), "{errors:?}");
}

// ---------------------------------------------------------------------------------------------
// With kubectl

/// Runs kubectl as the sandbox's admin; stdout, or a failure with everything kubectl said.
async fn run(
    kubectl: &Path,
    server: &sluice::sandbox::apiserver::ApiServer,
    args: &[&str],
) -> String {
    let out = support::run_kubectl(kubectl, server, args).await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test]
async fn kubectl_apply_k_deploy_creates_every_object_in_a_fresh_sandbox() {
    let Some(kubectl) = support::kubectl() else {
        return;
    };
    let server = support::server().await;
    let dir = deploy_dir();
    let dir = dir.to_str().unwrap();
    let applied = run(&kubectl, &server, &["apply", "-k", dir]).await;
    let expected = identities(&installed());
    assert_eq!(
        applied.lines().filter(|l| l.ends_with(" created")).count(),
        expected.len(),
        "{applied}"
    );
    let got: Value =
        serde_json::from_str(&run(&kubectl, &server, &["get", "-k", dir, "-o", "json"]).await)
            .unwrap();
    let items = got["items"].as_array().unwrap();
    assert_eq!(identities(items), expected);
    let deployment = items.iter().find(|o| o["kind"] == "Deployment").unwrap();
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"], "sluice:dev",
        "kustomize's image tag is applied"
    );
    // Applying again changes nothing. kubectl always re-sends a PodDisruptionBudget's selector
    // (its patch strategy is `replace`), so it says `configured` there, as on a real cluster.
    let again = run(&kubectl, &server, &["apply", "-k", dir]).await;
    assert!(
        again
            .lines()
            .all(|l| l.ends_with(" unchanged")
                || l == "poddisruptionbudget.policy/sluice configured"),
        "applying again changes nothing: {again}"
    );
    assert_eq!(again.lines().count(), expected.len(), "{again}");
}

#[tokio::test]
async fn the_cert_manager_overlay_injects_its_ca_into_both_webhook_configurations() {
    let Some(kubectl) = support::kubectl() else {
        return;
    };
    let dir = deploy_dir().join("cert-manager");
    let out = tokio::process::Command::new(&kubectl)
        .args(["kustomize", dir.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let objects: Vec<Value> = yaml_docs(&String::from_utf8_lossy(&out.stdout));
    let certificate = objects
        .iter()
        .find(|o| o["kind"] == "Certificate" && o["metadata"]["name"] == NAME)
        .expect("the serving Certificate");
    assert_eq!(certificate["metadata"]["namespace"], NAMESPACE);
    assert_eq!(certificate["spec"]["secretName"], "sluice-tls");
    assert!(
        certificate["spec"]["dnsNames"]
            .as_array()
            .unwrap()
            .contains(&"sluice.sluice-system.svc".into())
    );
    let issuer = &certificate["spec"]["issuerRef"]["name"];
    let ca_issuer = objects
        .iter()
        .find(|o| o["kind"] == "Issuer" && &o["metadata"]["name"] == issuer)
        .expect("the serving certificate's Issuer");
    let ca = objects
        .iter()
        .find(|o| {
            o["kind"] == "Certificate"
                && o["spec"]["secretName"] == ca_issuer["spec"]["ca"]["secretName"]
        })
        .expect("the CA Certificate");
    assert_eq!(ca["spec"]["isCA"], true);
    for kind in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        let config = objects.iter().find(|o| o["kind"] == kind).unwrap();
        assert_eq!(
            config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
            format!("{NAMESPACE}/{NAME}"),
            "{kind}"
        );
    }
    let base = identities(&installed());
    let overlay = identities(&objects);
    assert!(
        base.is_subset(&overlay),
        "the overlay installs the base too"
    );
}

/// The rollout status on `shop/podinfo`, if it has one.
async fn rollout_phase(client: &kube::Client) -> Option<sluice::controller::status::Phase> {
    let d = kube::Api::<Deployment>::namespaced(client.clone(), "shop")
        .get("podinfo")
        .await
        .ok()?;
    sluice::controller::status::RolloutStatus::from_annotations(d.metadata.annotations.as_ref())
        .ok()
        .flatten()
        .map(|s| s.phase)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_runs_end_to_end_through_the_installed_objects() {
    use sluice::controller::status::Phase;
    use sluice::sandbox::apiserver::Identity;
    use std::time::{Duration, Instant};
    let Some(kubectl) = support::kubectl() else {
        return;
    };
    let Some(metrics) = support::metrics_backend() else {
        return;
    };
    sluice::tls::install_crypto_provider();
    let sandbox = sluice::sandbox::Sandbox::start(sluice::sandbox::SandboxOptions {
        ready_delay: Duration::from_millis(500),
        metrics,
    })
    .await
    .unwrap();
    let dir = deploy_dir();
    run(
        &kubectl,
        &sandbox.api,
        &["apply", "-k", dir.to_str().unwrap()],
    )
    .await;
    let admin = sandbox.client(Identity::Admin).await.unwrap();
    let minted = sluice::cli::certs::mint("sluice-system").unwrap();
    sluice::cli::certs::install(&admin, "sluice-system", &minted)
        .await
        .unwrap();

    // `sluice serve` as the installed pod runs it: the Secret's files, the service account
    // the RBAC binds, the Service the webhook configurations call.
    let secret =
        kube::Api::<k8s_openapi::api::core::v1::Secret>::namespaced(admin.clone(), "sluice-system")
            .get("sluice-tls")
            .await
            .unwrap();
    let data = secret.data.unwrap();
    let files = tempfile::tempdir().unwrap();
    let (cert, key) = (files.path().join("tls.crt"), files.path().join("tls.key"));
    std::fs::write(&cert, &data["tls.crt"].0).unwrap();
    std::fs::write(&key, &data["tls.key"].0).unwrap();
    let sluice = sluice::serve::Sluice::start(sluice::serve::Config {
        client: sandbox.client(Identity::Sluice).await.unwrap(),
        tls: sluice::webhook::load_tls(&cert, &key).unwrap(),
        tls_files: Some((cert, key)),
        webhook_addr: "127.0.0.1:0".parse().unwrap(),
        admin_addr: None,
        prometheus_url: sandbox.metrics.url().to_string(),
        namespace: "sluice-system".into(),
        instance: "installed".into(),
        lease_duration: Duration::from_secs(2),
        shutdown_delay: Duration::ZERO,
    })
    .await
    .unwrap();
    sandbox
        .api
        .register_service("sluice-system", "sluice", sluice.webhook_addr());

    // The example app, with short analysis settings, and traffic.
    let example = deploy_dir().join("examples/podinfo.yaml");
    run(
        &kubectl,
        &sandbox.api,
        &["apply", "-f", example.to_str().unwrap()],
    )
    .await;
    run(
        &kubectl,
        &sandbox.api,
        &[
            "-n",
            "shop",
            "annotate",
            "deploy/podinfo",
            "--overwrite",
            "sluice.dev/interval=2s",
            "sluice.dev/min-requests=5",
        ],
    )
    .await;
    sandbox.mesh.set_load("shop", "podinfo", 50.0);
    let wait = |want: Phase, secs: u64| {
        let admin = admin.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(secs);
            loop {
                let phase = rollout_phase(&admin).await;
                if phase == Some(want) {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "waiting for {want:?}, at {phase:?}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    wait(Phase::Initialized, 30).await;
    run(
        &kubectl,
        &sandbox.api,
        &[
            "-n",
            "shop",
            "set",
            "image",
            "deploy/podinfo",
            "podinfod=ghcr.io/stefanprodan/podinfo:6.0.1",
        ],
    )
    .await;
    let held = kube::Api::<Deployment>::namespaced(admin.clone(), "shop")
        .get("podinfo")
        .await
        .unwrap();
    assert_eq!(
        held.spec.unwrap().paused,
        Some(true),
        "the installed mutating webhook held the update"
    );
    wait(Phase::Succeeded, 60).await;
    sluice.shutdown().await;
    sandbox.shutdown().await;
}
