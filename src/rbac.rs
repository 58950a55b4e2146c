//! What Sluice asks of the Kubernetes API, in one table: every (API group, resource, verb) its
//! code calls, whether cluster-wide or only in its own namespace, and which module needs it.
//!
//! ```text
//!  API_CALLS ──required_grants()──► {Grant} ◄──grants_of_rules()── deploy/rbac.yaml
//!                                       └──── tests/deploy.rs: equal, nothing more, nothing missing
//! ```
//!
//! `deploy/rbac.yaml` grants exactly this table: the cluster-wide calls through the ClusterRole
//! `sluice`, the calls in Sluice's namespace through the Role `sluice` there (tighter: the policy
//! ConfigMap by name, Leases only in `sluice-system`). A new API call is a new entry here, and the
//! test fails until the manifests grant it.
//!
//! Choices where the design is silent:
//! - No wildcards and no `nonResourceURLs`: discovery (`/apis/…`, used by the routers) and
//!   `/version` (checked at start) are open to every authenticated user through the built-in
//!   `system:discovery` and `system:public-info-viewer` roles.
//! - Server-side apply of an object that does not exist yet creates it, and kube-apiserver then
//!   also checks `create`; so every kind Sluice applies has both `patch` and `create`.
//! - Generated objects carry an owner reference to `app` with `blockOwnerDeletion`, which the
//!   `OwnerReferencesPermissionEnforcement` admission plugin (enabled by many distributions)
//!   allows only with `update` on `deployments/finalizers`.
//! - Leases (`get`, `create`, `update` in Sluice's namespace) are granted ahead of the leader
//!   election that uses them (issue 7), so that installing it needs no RBAC change.

use std::collections::BTreeSet;

use k8s_openapi::api::rbac::v1::PolicyRule;

/// Where a permission applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Every namespace (and cluster-scoped kinds): the ClusterRole.
    Cluster,
    /// Only Sluice's own namespace (`sluice-system`): the Role there.
    OwnNamespace,
}

impl Scope {
    /// `ClusterRole` / `Role`: the kind that grants at this scope.
    pub fn role_kind(self) -> &'static str {
        match self {
            Scope::Cluster => "ClusterRole",
            Scope::OwnNamespace => "Role",
        }
    }
}

/// Calls Sluice makes to one resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiCall {
    /// API group; empty for the core group.
    pub group: &'static str,
    /// Plural resource, with `/subresource` when it is one (`deployments/finalizers`).
    pub resource: &'static str,
    pub verbs: &'static [&'static str],
    pub scope: Scope,
    /// Object names the calls are limited to; empty: any. (A list or watch limited by name
    /// carries a `metadata.name` field selector, which RBAC accepts.)
    pub resource_names: &'static [&'static str],
    /// The module that makes the calls, and what for.
    pub needed_by: &'static str,
}

/// Every Kubernetes API call Sluice makes, one entry per resource and module.
pub const API_CALLS: &[ApiCall] = &[
    ApiCall {
        group: "",
        resource: "namespaces",
        verbs: &["list", "watch"],
        scope: Scope::Cluster,
        resource_names: &[],
        needed_by: "controller::run::Caches: the Namespace cache behind opt-in by Namespace label \
                    and Namespace-level policy, read by the webhook and the controller",
    },
    ApiCall {
        group: "",
        resource: "configmaps",
        verbs: &["list", "watch"],
        scope: Scope::OwnNamespace,
        resource_names: &["sluice-policy"],
        needed_by: "controller::run::Caches: the cluster policy ConfigMap sluice-policy, read by \
                    the controller and the webhook (freeze windows, cross-level checks)",
    },
    ApiCall {
        group: "apps",
        resource: "deployments",
        verbs: &["list", "watch"],
        scope: Scope::Cluster,
        resource_names: &[],
        needed_by: "controller::run: the Controller's watch of every Deployment and of the \
                    app-primary Deployments it owns",
    },
    ApiCall {
        group: "apps",
        resource: "deployments",
        verbs: &["get", "create", "patch", "delete"],
        scope: Scope::Cluster,
        resource_names: &[],
        needed_by: "controller::reconcile: read and server-side apply app-primary, patch the \
                    status, pause and template of app, delete app-primary at the end",
    },
    ApiCall {
        group: "autoscaling",
        resource: "horizontalpodautoscalers",
        verbs: &["list", "watch", "create", "patch", "delete"],
        scope: Scope::Cluster,
        resource_names: &[],
        needed_by: "controller::run caches every HPA; controller::reconcile: find the HPA of app \
                    (listed until that cache has synced), server-side apply its copy \
                    app-primary while a rollout runs, delete it at the end",
    },
    ApiCall {
        group: "apps",
        resource: "deployments/finalizers",
        verbs: &["update"],
        scope: Scope::Cluster,
        resource_names: &[],
        needed_by: "controller::objects and the routers: owner references to app with \
                    blockOwnerDeletion on every generated object",
    },
    ApiCall {
        group: "",
        resource: "services",
        verbs: &["list", "watch"],
        scope: Scope::Cluster,
        resource_names: &[],
        needed_by: "controller::run: the watch of the generated and the apex Services",
    },
    ApiCall {
        group: "",
        resource: "services",
        verbs: &["get", "create", "patch"],
        scope: Scope::Cluster,
        resource_names: &[],
        needed_by: "controller::reconcile: read the apex Service, server-side apply app-primary \
                    and app-canary, point the apex at the primary and restore it",
    },
    ApiCall {
        group: "split.smi-spec.io",
        resource: "trafficsplits",
        verbs: &["list", "watch"],
        scope: Scope::Cluster,
        resource_names: &[],
        needed_by: "controller::run: the watch of the routes Sluice owns",
    },
    ApiCall {
        group: "split.smi-spec.io",
        resource: "trafficsplits",
        verbs: &["get", "create", "patch", "delete"],
        scope: Scope::Cluster,
        resource_names: &[],
        needed_by: "routing::smi: read the route and server-side apply its weights; routing: \
                    delete it when the Deployment moved to another router",
    },
    ApiCall {
        group: "gateway.networking.k8s.io",
        resource: "httproutes",
        verbs: &["list", "watch"],
        scope: Scope::Cluster,
        resource_names: &[],
        needed_by: "controller::run: the watch of the routes Sluice owns",
    },
    ApiCall {
        group: "gateway.networking.k8s.io",
        resource: "httproutes",
        verbs: &["get", "create", "patch", "delete"],
        scope: Scope::Cluster,
        resource_names: &[],
        needed_by: "routing::gateway: read the route and server-side apply its weights; \
                    routing: delete it when the Deployment moved to another router",
    },
    ApiCall {
        group: "networking.k8s.io",
        resource: "ingresses",
        verbs: &["get", "list", "watch", "create", "patch", "delete"],
        scope: Scope::Cluster,
        resource_names: &[],
        needed_by: "routing::nginx: read the user's Ingress, server-side apply the canary Ingress \
                    app-canary and delete it when the Deployment moved to another router; \
                    controller::run: the watch of the canary Ingresses Sluice owns",
    },
    ApiCall {
        group: "linkerd.io",
        resource: "serviceprofiles",
        verbs: &["list"],
        scope: Scope::Cluster,
        resource_names: &[],
        needed_by: "routing::gateway and explain: find a ServiceProfile that overrides the \
                    HTTPRoute, to warn about it",
    },
    ApiCall {
        group: "events.k8s.io",
        resource: "events",
        verbs: &["create", "patch"],
        scope: Scope::Cluster,
        resource_names: &[],
        needed_by: "controller::reconcile: Events on app through kube's Recorder (patch for a \
                    repeated Event); webhook::admit::audit: the break-glass Event",
    },
    ApiCall {
        group: "coordination.k8s.io",
        resource: "leases",
        verbs: &["get", "create", "update"],
        scope: Scope::OwnNamespace,
        resource_names: &[],
        needed_by: "serve: the leader-election Lease, so that one replica runs the controller",
    },
    ApiCall {
        group: "",
        resource: "secrets",
        verbs: &["get"],
        scope: Scope::OwnNamespace,
        resource_names: &[crate::serve::PROMETHEUS_SECRET],
        needed_by: "serve: the credentials Secret of --prometheus-secret, read at start and \
                    again when Prometheus refuses them (analysis::prometheus::access)",
    },
];

/// One permission: a verb on a resource (possibly one object of it) at a scope.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Grant {
    pub scope: Scope,
    pub group: String,
    pub resource: String,
    /// `None`: every object.
    pub resource_name: Option<String>,
    pub verb: String,
}

impl std::fmt::Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let group = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        write!(
            f,
            "{} {} {}/{}",
            self.scope.role_kind(),
            self.verb,
            group,
            self.resource
        )?;
        if let Some(name) = &self.resource_name {
            write!(f, " named {name}")?;
        }
        Ok(())
    }
}

/// A rule that cannot be read as exact grants.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error(
        "{role} rule {index} has a wildcard in {field}: {value:?}; list each one Sluice needs (crate::rbac::API_CALLS)"
    )]
    Wildcard {
        role: String,
        index: usize,
        field: &'static str,
        value: String,
    },
    #[error(
        "{role} rule {index} grants nonResourceURLs {urls:?}; Sluice needs none (discovery is open to every authenticated user)"
    )]
    NonResourceUrls {
        role: String,
        index: usize,
        urls: Vec<String>,
    },
}

fn one(scope: Scope, group: &str, resource: &str, name: Option<&str>, verb: &str) -> Grant {
    Grant {
        scope,
        group: group.to_string(),
        resource: resource.to_string(),
        resource_name: name.map(str::to_string),
        verb: verb.to_string(),
    }
}

/// Every grant [`API_CALLS`] needs.
pub fn required_grants() -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for call in API_CALLS {
        for verb in call.verbs {
            if call.resource_names.is_empty() {
                out.insert(one(call.scope, call.group, call.resource, None, verb));
            }
            for name in call.resource_names {
                out.insert(one(call.scope, call.group, call.resource, Some(name), verb));
            }
        }
    }
    out
}

/// The grants of a ClusterRole's or Role's `rules` (`role` names it in errors), refusing
/// wildcards and `nonResourceURLs`.
pub fn grants_of_rules(
    scope: Scope,
    role: &str,
    rules: &[PolicyRule],
) -> Result<BTreeSet<Grant>, RuleError> {
    let mut out = BTreeSet::new();
    for (index, rule) in rules.iter().enumerate() {
        if let Some(urls) = rule.non_resource_urls.as_ref().filter(|u| !u.is_empty()) {
            return Err(RuleError::NonResourceUrls {
                role: role.to_string(),
                index,
                urls: urls.clone(),
            });
        }
        let groups = rule.api_groups.as_deref().unwrap_or_default();
        let resources = rule.resources.as_deref().unwrap_or_default();
        let names = rule.resource_names.as_deref().unwrap_or_default();
        for (field, values) in [
            ("apiGroups", groups),
            ("resources", resources),
            ("verbs", &rule.verbs[..]),
            ("resourceNames", names),
        ] {
            if let Some(v) = values.iter().find(|v| v.contains('*')) {
                return Err(RuleError::Wildcard {
                    role: role.to_string(),
                    index,
                    field,
                    value: v.clone(),
                });
            }
        }
        let names: Vec<Option<&str>> = if names.is_empty() {
            vec![None]
        } else {
            names.iter().map(|n| Some(n.as_str())).collect()
        };
        for group in groups {
            for resource in resources {
                for verb in &rule.verbs {
                    for name in &names {
                        out.insert(one(scope, group, resource, *name, verb));
                    }
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
        PolicyRule {
            api_groups: Some(groups.iter().map(|s| s.to_string()).collect()),
            resources: Some(resources.iter().map(|s| s.to_string()).collect()),
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            ..PolicyRule::default()
        }
    }

    const VERBS: [&str; 8] = [
        "get",
        "list",
        "watch",
        "create",
        "update",
        "patch",
        "delete",
        "deletecollection",
    ];

    #[test]
    fn every_call_names_real_verbs_and_the_module_that_needs_it() {
        for call in API_CALLS {
            assert!(!call.verbs.is_empty(), "{call:?}");
            for verb in call.verbs {
                assert!(VERBS.contains(verb), "{verb} in {call:?}");
            }
            assert!(!call.resource.contains('*'), "{call:?}");
            let module = call.needed_by.split(':').next().unwrap_or_default();
            assert!(
                ["controller", "routing", "serve", "webhook"].contains(&module),
                "needed_by should start with the module: {call:?}"
            );
        }
    }

    #[test]
    fn no_grant_is_listed_twice() {
        let listed: usize = API_CALLS
            .iter()
            .map(|c| c.verbs.len() * c.resource_names.len().max(1))
            .sum();
        assert_eq!(required_grants().len(), listed);
    }

    #[test]
    fn the_policy_configmap_and_leases_are_granted_only_in_sluices_namespace() {
        let grants = required_grants();
        for g in &grants {
            if matches!(g.resource.as_str(), "configmaps" | "leases") {
                assert_eq!(g.scope, Scope::OwnNamespace, "{g}");
            }
        }
        assert!(grants.contains(&one(
            Scope::OwnNamespace,
            "",
            "configmaps",
            Some("sluice-policy"),
            "watch"
        )));
    }

    #[test]
    fn rules_flatten_into_one_grant_per_group_resource_name_and_verb() {
        let mut r = rule(&["", "apps"], &["services"], &["get", "list"]);
        r.resource_names = Some(vec!["a".into(), "b".into()]);
        let grants = grants_of_rules(Scope::OwnNamespace, "Role x", &[r]).unwrap();
        assert_eq!(grants.len(), 8);
        assert!(grants.contains(&one(
            Scope::OwnNamespace,
            "apps",
            "services",
            Some("b"),
            "list"
        )));
    }

    #[test]
    fn wildcards_are_refused_naming_the_rule_and_field() {
        let rules = [
            rule(&["apps"], &["deployments"], &["get"]),
            rule(&["apps"], &["*"], &["get"]),
        ];
        let err = grants_of_rules(Scope::Cluster, "ClusterRole sluice", &rules).unwrap_err();
        assert_eq!(
            err,
            RuleError::Wildcard {
                role: "ClusterRole sluice".into(),
                index: 1,
                field: "resources",
                value: "*".into()
            }
        );
        assert!(err.to_string().contains("list each one Sluice needs"));
        let verbs = [rule(&[""], &["services"], &["*"])];
        assert!(matches!(
            grants_of_rules(Scope::Cluster, "r", &verbs),
            Err(RuleError::Wildcard { field: "verbs", .. })
        ));
    }

    #[test]
    fn non_resource_urls_are_refused() {
        let r = PolicyRule {
            non_resource_urls: Some(vec!["/metrics".into()]),
            verbs: vec!["get".into()],
            ..PolicyRule::default()
        };
        assert!(matches!(
            grants_of_rules(Scope::Cluster, "r", &[r]),
            Err(RuleError::NonResourceUrls { .. })
        ));
    }

    #[test]
    fn grants_print_as_a_person_reads_them() {
        let g = one(
            Scope::OwnNamespace,
            "",
            "configmaps",
            Some("sluice-policy"),
            "list",
        );
        assert_eq!(
            g.to_string(),
            "Role list core/configmaps named sluice-policy"
        );
    }
}
