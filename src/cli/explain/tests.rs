//! Golden tests: the whole output for a policy set at each level. The files are in
//! `tests/fixtures/explain/`; `UPDATE_GOLDEN=1 cargo test --lib cli::explain` rewrites them
//! (review the diff).

use super::*;

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn mk_inputs() -> Inputs {
    Inputs {
        namespace: "shop".into(),
        name: "web".into(),
        deployment_labels: map(&[("app", "web")]),
        deployment_annotations: map(&[("deployment.kubernetes.io/revision", "3")]),
        namespace_labels: Some(map(&[("sluice.dev/canary", "enabled")])),
        namespace_annotations: Some(BTreeMap::new()),
        sluice_namespace: "sluice-system".into(),
        cluster: None,
        warnings: Vec::new(),
    }
}

fn golden(name: &str, actual: &str) {
    let path = format!(
        "{}/tests/fixtures/explain/{name}.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}; run with UPDATE_GOLDEN=1 to create it"));
    assert_eq!(actual, expected, "{path} differs");
}

#[test]
fn deployment_annotations_win_and_show_as_deployment() {
    let inputs = Inputs {
        deployment_labels: map(&[("app", "web"), ("sluice.dev/canary", "enabled")]),
        deployment_annotations: map(&[
            ("sluice.dev/interval", "30s"),
            ("sluice.dev/step-weights", "5,10,25,50"),
            ("sluice.dev/max-weight", "50"),
            ("sluice.dev/pause", "true"),
            ("sluice.dev/status", "{}"),
        ]),
        namespace_labels: Some(BTreeMap::new()),
        namespace_annotations: Some(map(&[("sluice.dev/interval", "2m")])),
        ..mk_inputs()
    };
    golden("deployment", &render(&inputs));
}

#[test]
fn namespace_annotations_fill_in_and_a_bad_deployment_value_is_reported() {
    let inputs = Inputs {
        deployment_annotations: map(&[
            ("sluice.dev/threshold", "zero"),
            ("sluice.dev/latency-p99", "300ms"),
        ]),
        namespace_annotations: Some(map(&[
            ("sluice.dev/threshold", "3"),
            ("sluice.dev/router", "gateway-api"),
            ("sluice.dev/success-rate", "99.9"),
        ])),
        ..mk_inputs()
    };
    golden("namespace", &render(&inputs));
}

#[test]
fn cluster_policy_applies_under_the_namespace_and_its_errors_name_the_configmap() {
    let inputs = Inputs {
        deployment_labels: map(&[("app", "web"), ("sluice.dev/canary", "disabled")]),
        namespace_annotations: Some(map(&[("sluice.dev/min-requests", "50")])),
        cluster: Some(map(&[
            ("interval", "2m"),
            ("min-requests", "10"),
            ("success-rate", "99.5"),
            ("max-weight", "150"),
            ("sluice.dev/threshold", "4"),
        ])),
        ..mk_inputs()
    };
    golden("cluster", &render(&inputs));
}

#[test]
fn missing_namespace_and_configmap_are_said_and_everything_is_a_default() {
    let inputs = Inputs {
        deployment_annotations: BTreeMap::new(),
        namespace_labels: None,
        namespace_annotations: None,
        ..mk_inputs()
    };
    let out = render(&inputs);
    assert!(out.contains("Namespace shop not found"), "{out}");
    assert!(
        out.contains("ConfigMap sluice-system/sluice-policy not found"),
        "{out}"
    );
    assert!(out.contains("not managed"), "{out}");
    let rows: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("SETTING"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(rows.len(), 21, "{out}");
    assert!(rows.iter().all(|r| r.ends_with("default")), "{out}");
}

#[test]
fn a_conflict_between_levels_drops_the_blamed_key_and_keeps_the_rest() {
    let deployment = map(&[("sluice.dev/step-weight", "60")]);
    let namespace = map(&[("sluice.dev/max-weight", "40")]);
    let layers = Layers {
        deployment: Some(&deployment),
        namespace: Some(&namespace),
        cluster: None,
    };
    assert!(settings::resolve(&layers).is_err());
    let (resolved, errors) = resolve_reporting(&layers);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].key(), "sluice.dev/step-weight");
    assert_eq!(errors[0].level(), Level::Deployment);
    assert_eq!(resolved.settings.max_weight, 40);
    assert_eq!(
        resolved.source(crate::policy::keys::Setting::MaxWeight),
        settings::Source::Namespace
    );
    assert_eq!(resolved.settings.steps, settings::StepPlan::Increment(10));
}

#[test]
fn the_json_report_says_what_the_text_says() {
    let inputs = Inputs {
        deployment_annotations: map(&[
            ("sluice.dev/interval", "30s"),
            ("sluice.dev/threshold", "many"),
        ]),
        namespace_annotations: Some(map(&[("sluice.dev/interval", "2m")])),
        ..mk_inputs()
    };
    let r = report(&inputs);
    assert!(r.managed);
    assert_eq!(
        r.reason,
        optin::managed(
            &inputs.deployment_labels,
            inputs.namespace_labels.as_ref().unwrap()
        )
        .reason()
    );
    assert!(r.namespace_found && !r.policy_found);
    let interval = r.settings.iter().find(|s| s.setting == "interval").unwrap();
    assert_eq!(
        (interval.value.as_deref(), interval.source.as_str()),
        (Some("30s"), "deployment")
    );
    let threshold = r
        .settings
        .iter()
        .find(|s| s.setting == "threshold")
        .unwrap();
    assert_eq!(threshold.source, "default", "the invalid value is left out");
    assert_eq!(r.invalid.len(), 1);
    assert_eq!(
        (r.invalid[0].level.as_str(), r.invalid[0].key.as_str()),
        ("deployment", "sluice.dev/threshold")
    );
    let text = render(&inputs);
    assert!(text.contains(&r.invalid[0].message), "{text}");
    let service = r.settings.iter().find(|s| s.setting == "service").unwrap();
    assert_eq!(service.value, None, "unset: the Deployment's name applies");
}

#[test]
fn a_serviceprofile_of_the_apex_is_a_warning_only_with_gateway_api() {
    let profiles = vec![
        "web.shop.svc.cluster.local".to_string(),
        "cart.shop.svc.cluster.local".to_string(),
    ];
    let warnings = route_warnings(RouterKind::GatewayApi, "shop", "web", "web", &profiles);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("ServiceProfile shop/web.shop.svc.cluster.local"));
    assert!(route_warnings(RouterKind::Smi, "shop", "web", "web", &profiles).is_empty());
    assert!(
        route_warnings(
            RouterKind::GatewayApi,
            "shop",
            "web",
            "storefront",
            &profiles
        )
        .is_empty()
    );
    let inputs = Inputs {
        deployment_annotations: map(&[("sluice.dev/router", "gateway-api")]),
        warnings,
        ..mk_inputs()
    };
    golden("serviceprofile-warning", &render(&inputs));
}
