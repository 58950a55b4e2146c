use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStatus, DeploymentStrategy,
};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::*;

const DELAY: Duration = Duration::from_secs(2);

fn mk_deploy(name: &str, image: &str, replicas: i32) -> Deployment {
    let labels = BTreeMap::from([("app".to_string(), name.to_string())]);
    Deployment {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            generation: Some(1),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "app".into(),
                        image: Some(image.into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

fn set_image(d: &mut Deployment, image: &str) {
    let spec = d.spec.as_mut().and_then(|s| s.template.spec.as_mut());
    if let Some(spec) = spec {
        spec.containers[0].image = Some(image.into());
    }
    d.metadata.generation = Some(d.metadata.generation.unwrap_or(0) + 1);
}

fn spec_mut(d: &mut Deployment) -> &mut DeploymentSpec {
    d.metadata.generation = Some(d.metadata.generation.unwrap_or(0) + 1);
    d.spec.get_or_insert_with(Default::default)
}

/// Drives `step` the way the runtime does: the written status comes back as the stored one.
struct Harness {
    deploy: Deployment,
    sim: DeploymentSim,
    broken: BTreeSet<String>,
    now: SystemTime,
    wake: Option<SystemTime>,
    writes: usize,
}

impl Harness {
    fn new(deploy: Deployment) -> Harness {
        Harness {
            deploy,
            sim: DeploymentSim::default(),
            broken: BTreeSet::new(),
            now: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            wake: None,
            writes: 0,
        }
    }

    fn sync(&mut self) -> &DeploymentStatus {
        let env = Env {
            broken_images: &self.broken,
            ready_delay: DELAY,
            now: self.now,
        };
        let out = step(&self.deploy, &self.sim, env);
        self.sim = out.sim;
        self.wake = out.wake;
        if self.deploy.status.clone().unwrap_or_default() != out.status {
            self.writes += 1;
            self.deploy.status = Some(out.status);
        }
        self.status()
    }

    /// Moves the clock to the next wake-up (or by `d` if none) and syncs.
    fn advance(&mut self, d: Duration) -> &DeploymentStatus {
        self.now += d;
        self.sync()
    }

    /// A harness for `deploy` after its first rollout has settled.
    fn settled(deploy: Deployment) -> Harness {
        let mut h = Harness::new(deploy);
        h.settle();
        h
    }

    /// Runs until quiet, within a minute.
    fn settle(&mut self) {
        self.run_until_quiet(Duration::from_secs(60));
    }

    fn run_until_quiet(&mut self, limit: Duration) {
        let end = self.now + limit;
        self.sync();
        while let Some(at) = self.wake.filter(|at| *at <= end) {
            self.now = at.max(self.now);
            self.sync();
        }
    }

    fn status(&self) -> &DeploymentStatus {
        self.deploy.status.as_ref().expect("a status was written")
    }

    fn images(&self) -> Vec<(String, bool)> {
        let mut v: Vec<(String, bool)> = self
            .sim
            .pods
            .iter()
            .map(|p| (p.image.clone(), p.ready_at.is_some()))
            .collect();
        v.sort();
        v
    }

    fn condition(&self, type_: &str) -> (String, String, String) {
        let c = get_condition(self.status(), type_).expect("condition present");
        (
            c.status.clone(),
            c.reason.clone().unwrap_or_default(),
            c.message.clone().unwrap_or_default(),
        )
    }
}

fn counts(s: &DeploymentStatus) -> [i32; 5] {
    [
        num(s.replicas),
        num(s.updated_replicas),
        num(s.ready_replicas),
        num(s.available_replicas),
        num(s.unavailable_replicas),
    ]
}

#[test]
fn template_hash_is_stable_uses_the_safe_alphabet_and_follows_the_template() {
    let a = mk_deploy("app", "app:1", 1)
        .spec
        .map(|s| s.template)
        .unwrap_or_default();
    let b = mk_deploy("app", "app:2", 1)
        .spec
        .map(|s| s.template)
        .unwrap_or_default();
    let ha = pod_template_hash(&a);
    assert_eq!(ha, pod_template_hash(&a.clone()));
    assert_ne!(ha, pod_template_hash(&b));
    assert!((1..=10).contains(&ha.len()), "{ha}");
    // Decimal digits map onto ten letters of the alphabet, as in real hashes like 5d59d67564.
    assert!(ha.chars().all(|c| "456789bcdf".contains(c)), "{ha}");
}

#[test]
fn pod_suffixes_do_not_repeat() {
    let names: BTreeSet<String> = (0..5000).map(pod_suffix).collect();
    assert_eq!(names.len(), 5000);
    assert!(names.iter().all(|n| n.len() == 5));
}

#[test]
fn a_new_deployment_starts_unready_pods_then_reports_them_available_after_the_delay() {
    let mut h = Harness::new(mk_deploy("app", "app:1", 2));
    let s = h.sync().clone();
    assert_eq!(counts(&s), [2, 2, 0, 0, 2]);
    assert_eq!(s.observed_generation, Some(1));
    assert_eq!(h.condition(AVAILABLE).1, MINIMUM_REPLICAS_UNAVAILABLE);
    let hash = pod_template_hash(&h.deploy.spec.clone().unwrap_or_default().template);
    assert_eq!(
        h.condition(PROGRESSING),
        (
            "True".into(),
            RS_UPDATED.into(),
            format!("ReplicaSet \"app-{hash}\" is progressing.")
        )
    );
    assert_eq!(h.wake, Some(h.now + DELAY));
    let pod = &h.sim.pods[0];
    assert!(pod.name.starts_with(&format!("app-{hash}-")));
    assert_eq!(pod.labels.get(POD_TEMPLATE_HASH_LABEL), Some(&hash));
    assert_eq!(pod.labels.get("app").map(String::as_str), Some("app"));

    let s = h.advance(DELAY).clone();
    assert_eq!(counts(&s), [2, 2, 2, 2, 0]);
    assert_eq!(
        h.condition(AVAILABLE),
        (
            "True".into(),
            MINIMUM_REPLICAS_AVAILABLE.into(),
            "Deployment has minimum availability.".into()
        )
    );
    assert_eq!(
        h.condition(PROGRESSING),
        (
            "True".into(),
            NEW_RS_AVAILABLE.into(),
            format!("ReplicaSet \"app-{hash}\" has successfully progressed.")
        )
    );
    assert_eq!(h.wake, None);
}

#[test]
fn a_settled_deployment_is_not_written_again() {
    let mut h = Harness::settled(mk_deploy("app", "app:1", 2));
    let writes = h.writes;
    h.advance(Duration::from_secs(30));
    h.advance(Duration::from_secs(30));
    assert_eq!(h.writes, writes);
}

#[test]
fn a_template_change_surges_new_pods_before_retiring_old_ones() {
    let mut d = mk_deploy("app", "app:1", 4);
    if let Some(spec) = d.spec.as_mut() {
        spec.strategy = Some(DeploymentStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(k8s_openapi::api::apps::v1::RollingUpdateDeployment {
                max_surge: Some(IntOrString::Int(1)),
                max_unavailable: Some(IntOrString::Int(0)),
            }),
        });
    }
    let mut h = Harness::settled(d);
    set_image(&mut h.deploy, "app:2");
    let s = h.sync().clone();
    // One surge pod, no old pod gone while it is not ready.
    assert_eq!(counts(&s), [5, 1, 4, 4, 1]);
    let mut seen_max_total = 0;
    while h.wake.is_some() {
        let at = h.wake.unwrap_or(h.now);
        h.now = at;
        let s = h.sync().clone();
        seen_max_total = seen_max_total.max(num(s.replicas));
        assert!(
            num(s.available_replicas) >= 4,
            "never below minAvailable: {s:?}"
        );
    }
    assert!(seen_max_total <= 5);
    assert_eq!(counts(h.status()), [4, 4, 4, 4, 0]);
    assert!(h.images().iter().all(|(i, ready)| i == "app:2" && *ready));
    assert_eq!(h.condition(PROGRESSING).1, NEW_RS_AVAILABLE);
    assert_eq!(h.status().observed_generation, Some(2));
}

#[test]
fn default_fenceposts_round_surge_up_and_unavailable_down() {
    let spec = mk_deploy("app", "x", 2).spec.unwrap_or_default();
    assert_eq!(
        fenceposts(&spec, 2),
        Fenceposts {
            surge: 1,
            unavailable: 0
        }
    );
    assert_eq!(
        fenceposts(&spec, 10),
        Fenceposts {
            surge: 3,
            unavailable: 2
        }
    );
    let mut zero = spec.clone();
    zero.strategy = Some(DeploymentStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(k8s_openapi::api::apps::v1::RollingUpdateDeployment {
            max_surge: Some(IntOrString::String("0%".into())),
            max_unavailable: Some(IntOrString::Int(0)),
        }),
    });
    assert_eq!(
        fenceposts(&zero, 4),
        Fenceposts {
            surge: 0,
            unavailable: 1
        }
    );
}

#[test]
fn a_paused_deployment_keeps_serving_the_old_template() {
    let mut h = Harness::settled(mk_deploy("app", "app:1", 2));
    set_image(&mut h.deploy, "app:2");
    spec_mut(&mut h.deploy).paused = Some(true);
    let s = h.sync().clone();
    assert_eq!(counts(&s), [2, 0, 2, 2, 0]);
    assert_eq!(s.observed_generation, Some(3));
    assert_eq!(
        h.condition(PROGRESSING),
        (
            "Unknown".into(),
            PAUSED.into(),
            "Deployment is paused".into()
        )
    );
    assert_eq!(h.images(), [("app:1".into(), true), ("app:1".into(), true)]);
    assert_eq!(h.wake, None);
}

#[test]
fn scaling_a_paused_deployment_resizes_its_only_template() {
    let mut h = Harness::settled(mk_deploy("app", "app:1", 2));
    set_image(&mut h.deploy, "app:2");
    spec_mut(&mut h.deploy).paused = Some(true);
    spec_mut(&mut h.deploy).replicas = Some(3);
    h.settle();
    assert_eq!(counts(h.status()), [3, 0, 3, 3, 0]);
    assert!(h.images().iter().all(|(i, _)| i == "app:1"));
}

#[test]
fn resuming_a_paused_deployment_rolls_it_to_the_new_template() {
    let mut h = Harness::settled(mk_deploy("app", "app:1", 2));
    set_image(&mut h.deploy, "app:2");
    spec_mut(&mut h.deploy).paused = Some(true);
    h.sync();
    spec_mut(&mut h.deploy).paused = Some(false);
    h.sync();
    // The resume is recorded, then overtaken by progress in the same sync.
    assert_eq!(h.condition(PROGRESSING).1, RS_UPDATED);
    h.settle();
    assert_eq!(counts(h.status()), [2, 2, 2, 2, 0]);
    assert!(h.images().iter().all(|(i, _)| i == "app:2"));
    assert_eq!(h.condition(PROGRESSING).1, NEW_RS_AVAILABLE);
}

#[test]
fn scaling_changes_the_pod_count_of_the_current_template() {
    let mut h = Harness::settled(mk_deploy("app", "app:1", 2));
    spec_mut(&mut h.deploy).replicas = Some(5);
    h.settle();
    assert_eq!(counts(h.status()), [5, 5, 5, 5, 0]);
    spec_mut(&mut h.deploy).replicas = Some(1);
    h.sync();
    assert_eq!(counts(h.status()), [1, 1, 1, 1, 0]);
    spec_mut(&mut h.deploy).replicas = Some(0);
    h.sync();
    assert_eq!(counts(h.status()), [0, 0, 0, 0, 0]);
    assert!(h.sim.pods.is_empty());
}

#[test]
fn a_broken_image_never_becomes_ready_and_exceeds_the_progress_deadline() {
    let mut d = mk_deploy("app", "app:1", 2);
    spec_mut(&mut d).progress_deadline_seconds = Some(30);
    let mut h = Harness::settled(d);
    h.broken.insert("app:2".into());
    set_image(&mut h.deploy, "app:2");
    h.sync();
    let hash = pod_template_hash(&h.deploy.spec.clone().unwrap_or_default().template);
    assert_eq!(h.condition(PROGRESSING).1, RS_UPDATED);
    // Old pods keep serving; the new one waits for readiness that never comes.
    h.advance(Duration::from_secs(10));
    assert_eq!(counts(h.status()), [3, 1, 2, 2, 1]);
    assert_eq!(h.condition(PROGRESSING).1, RS_UPDATED);
    let wake = h.wake.expect("the deadline is a wake-up");
    h.now = wake;
    h.sync();
    assert_eq!(
        h.condition(PROGRESSING),
        (
            "False".into(),
            TIMED_OUT.into(),
            format!("ReplicaSet \"app-{hash}\" has timed out progressing.")
        )
    );
    assert_eq!(counts(h.status()), [3, 1, 2, 2, 1]);
    assert_eq!(h.wake, None);
    let ready: Vec<String> = h
        .images()
        .into_iter()
        .filter(|p| p.1)
        .map(|p| p.0)
        .collect();
    assert_eq!(ready, ["app:1", "app:1"]);
}

#[test]
fn a_deployment_without_a_deadline_has_no_progressing_condition() {
    let mut d = mk_deploy("app", "app:1", 1);
    spec_mut(&mut d).progress_deadline_seconds = Some(i32::MAX);
    let h = Harness::settled(d);
    assert!(get_condition(h.status(), PROGRESSING).is_none());
    assert_eq!(h.condition(AVAILABLE).0, "True");
}

#[test]
fn recreate_replaces_every_pod_at_once() {
    let mut d = mk_deploy("app", "app:1", 3);
    spec_mut(&mut d).strategy = Some(DeploymentStrategy {
        type_: Some("Recreate".into()),
        rolling_update: None,
    });
    let mut h = Harness::settled(d);
    set_image(&mut h.deploy, "app:2");
    h.sync();
    assert_eq!(counts(h.status()), [3, 3, 0, 0, 3]);
    assert_eq!(h.condition(AVAILABLE).1, MINIMUM_REPLICAS_UNAVAILABLE);
    h.settle();
    assert_eq!(counts(h.status()), [3, 3, 3, 3, 0]);
}

#[test]
fn min_ready_seconds_delays_availability_but_not_readiness() {
    let mut d = mk_deploy("app", "app:1", 1);
    spec_mut(&mut d).min_ready_seconds = Some(5);
    let mut h = Harness::new(d);
    h.sync();
    h.advance(DELAY);
    assert_eq!(counts(h.status()), [1, 1, 1, 0, 1]);
    assert_eq!(h.wake, Some(h.now + Duration::from_secs(5)));
    h.advance(Duration::from_secs(5));
    assert_eq!(counts(h.status()), [1, 1, 1, 1, 0]);
}

#[test]
fn going_back_to_an_old_template_reuses_its_pods() {
    let mut h = Harness::settled(mk_deploy("app", "app:1", 2));
    h.broken.insert("app:2".into());
    set_image(&mut h.deploy, "app:2");
    h.sync();
    set_image(&mut h.deploy, "app:1");
    h.settle();
    assert_eq!(counts(h.status()), [2, 2, 2, 2, 0]);
    assert!(h.images().iter().all(|(i, _)| i == "app:1"));
    assert_eq!(h.condition(PROGRESSING).1, NEW_RS_AVAILABLE);
}

#[test]
fn a_deployment_recreated_under_the_same_name_starts_with_fresh_pods() {
    let mut d = mk_deploy("app", "app:1", 2);
    d.metadata.uid = Some("first".into());
    let mut h = Harness::settled(d);
    let old: Vec<String> = h.sim.pods.iter().map(|p| p.name.clone()).collect();
    h.deploy.metadata.uid = Some("second".into());
    h.deploy.status = None;
    h.sync();
    assert_eq!(counts(h.status()), [2, 2, 0, 0, 2]);
    assert!(
        h.sim
            .pods
            .iter()
            .all(|p| !p.is_ready() && !old.contains(&p.name))
    );
}
