//! The kinds the sandbox API server serves, defined once: discovery, routing, storage,
//! admission rule matching and strategic-merge keys all read this table.
//!
//! Besides the kinds Sluice reads and writes, it serves what `kubectl apply -k deploy/` installs:
//! ServiceAccount, the `rbac.authorization.k8s.io/v1` roles and bindings, and `policy/v1`
//! PodDisruptionBudget. The sandbox stores RBAC objects but does not enforce them: every
//! authenticated identity may still do everything (see the `apiserver` module docs). What
//! Sluice needs granted is [`crate::rbac::API_CALLS`], which `tests/deploy.rs` holds the
//! manifests to.

/// One served resource at one group version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceKind {
    /// API group; empty for the core group.
    pub group: &'static str,
    pub version: &'static str,
    /// Lower-case plural, as in the URL (`deployments`).
    pub plural: &'static str,
    pub singular: &'static str,
    /// `Deployment`
    pub kind: &'static str,
    pub namespaced: bool,
    /// Subresources served under `{name}/{sub}` (`status`, `scale`).
    pub subresources: &'static [&'static str],
    pub short_names: &'static [&'static str],
    /// Versions of one group/plural share one storage; this is the version objects are kept in.
    pub storage_version: &'static str,
    /// The group whose storage this kind shares: its own, except `events.k8s.io` Events,
    /// which kube-apiserver keeps with core `v1` Events (see `convert`).
    pub storage_group: &'static str,
}

impl ResourceKind {
    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        group_version(self.group, self.version)
    }

    /// `deployments.apps`, or `services` for the core group (as error messages write it).
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Key of the storage shared by every version of this group/plural.
    pub fn storage_key(&self) -> String {
        format!("{}/{}", self.storage_group, self.plural)
    }

    /// The `apiVersion` objects are stored at.
    pub fn storage_api_version(&self) -> String {
        group_version(self.storage_group, self.storage_version)
    }

    pub fn has_subresource(&self, sub: &str) -> bool {
        self.subresources.contains(&sub)
    }
}

/// `group/version`, or `version` alone for the core group.
fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

macro_rules! kind {
    ($group:expr, $version:expr, $plural:expr, $singular:expr, $kind:expr, $namespaced:expr, $subs:expr, $short:expr) => {
        kind!(
            $group,
            $version,
            $plural,
            $singular,
            $kind,
            $namespaced,
            $subs,
            $short,
            $version
        )
    };
    ($group:expr, $version:expr, $plural:expr, $singular:expr, $kind:expr, $namespaced:expr, $subs:expr, $short:expr, $storage:expr) => {
        ResourceKind {
            group: $group,
            version: $version,
            plural: $plural,
            singular: $singular,
            kind: $kind,
            namespaced: $namespaced,
            subresources: $subs,
            short_names: $short,
            storage_version: $storage,
            storage_group: $group,
        }
    };
}

/// Every kind the sandbox serves, in discovery order.
pub fn builtin_kinds() -> Vec<ResourceKind> {
    vec![
        kind!(
            "",
            "v1",
            "namespaces",
            "namespace",
            "Namespace",
            false,
            &["status"],
            &["ns"]
        ),
        kind!(
            "",
            "v1",
            "services",
            "service",
            "Service",
            true,
            &["status"],
            &["svc"]
        ),
        kind!(
            "",
            "v1",
            "configmaps",
            "configmap",
            "ConfigMap",
            true,
            &[],
            &["cm"]
        ),
        kind!("", "v1", "secrets", "secret", "Secret", true, &[], &[]),
        kind!("", "v1", "events", "event", "Event", true, &[], &["ev"]),
        kind!(
            "",
            "v1",
            "serviceaccounts",
            "serviceaccount",
            "ServiceAccount",
            true,
            &[],
            &["sa"]
        ),
        kind!(
            "apps",
            "v1",
            "deployments",
            "deployment",
            "Deployment",
            true,
            &["status", "scale"],
            &["deploy"]
        ),
        kind!(
            "coordination.k8s.io",
            "v1",
            "leases",
            "lease",
            "Lease",
            true,
            &[],
            &[]
        ),
        ResourceKind {
            storage_group: "",
            ..kind!(
                "events.k8s.io",
                "v1",
                "events",
                "event",
                "Event",
                true,
                &[],
                &["ev"]
            )
        },
        kind!(
            "split.smi-spec.io",
            "v1alpha1",
            "trafficsplits",
            "trafficsplit",
            "TrafficSplit",
            true,
            &[],
            &["ts"],
            "v1alpha1"
        ),
        kind!(
            "split.smi-spec.io",
            "v1alpha2",
            "trafficsplits",
            "trafficsplit",
            "TrafficSplit",
            true,
            &[],
            &["ts"],
            "v1alpha1"
        ),
        kind!(
            "gateway.networking.k8s.io",
            "v1",
            "httproutes",
            "httproute",
            "HTTPRoute",
            true,
            &["status"],
            &[]
        ),
        kind!(
            "linkerd.io",
            "v1alpha2",
            "serviceprofiles",
            "serviceprofile",
            "ServiceProfile",
            true,
            &[],
            &["sp"]
        ),
        kind!(
            "networking.k8s.io",
            "v1",
            "ingresses",
            "ingress",
            "Ingress",
            true,
            &["status"],
            &["ing"]
        ),
        kind!(
            "autoscaling",
            "v2",
            "horizontalpodautoscalers",
            "horizontalpodautoscaler",
            "HorizontalPodAutoscaler",
            true,
            &["status"],
            &["hpa"]
        ),
        kind!(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterroles",
            "clusterrole",
            "ClusterRole",
            false,
            &[],
            &[]
        ),
        kind!(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterrolebindings",
            "clusterrolebinding",
            "ClusterRoleBinding",
            false,
            &[],
            &[]
        ),
        kind!(
            "rbac.authorization.k8s.io",
            "v1",
            "roles",
            "role",
            "Role",
            true,
            &[],
            &[]
        ),
        kind!(
            "rbac.authorization.k8s.io",
            "v1",
            "rolebindings",
            "rolebinding",
            "RoleBinding",
            true,
            &[],
            &[]
        ),
        kind!(
            "policy",
            "v1",
            "poddisruptionbudgets",
            "poddisruptionbudget",
            "PodDisruptionBudget",
            true,
            &["status"],
            &["pdb"]
        ),
        kind!(
            "admissionregistration.k8s.io",
            "v1",
            "mutatingwebhookconfigurations",
            "mutatingwebhookconfiguration",
            "MutatingWebhookConfiguration",
            false,
            &[],
            &[]
        ),
        kind!(
            "admissionregistration.k8s.io",
            "v1",
            "validatingwebhookconfigurations",
            "validatingwebhookconfiguration",
            "ValidatingWebhookConfiguration",
            false,
            &[],
            &[]
        ),
    ]
}

/// Finds a kind by group, version and plural.
pub fn lookup<'a>(
    kinds: &'a [ResourceKind],
    group: &str,
    version: &str,
    plural: &str,
) -> Option<&'a ResourceKind> {
    kinds
        .iter()
        .find(|k| k.group == group && k.version == version && k.plural == plural)
}

/// How a list field of a served kind merges, as its OpenAPI schema would say: the strategic
/// merge key (`x-kubernetes-patch-merge-key`) and the server-side apply list-map keys
/// (`x-kubernetes-list-map-keys`). The sandbox serves no schema for built-in kinds, so this one
/// table stands in for it; lists not in it are atomic (replaced whole).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListShape {
    pub patch_merge_key: &'static str,
    pub map_keys: &'static [&'static str],
}

/// The shape of list `field` under the map at `parent_path` (field names from the object root,
/// list positions omitted), or `None` for an atomic list.
pub fn list_shape(field: &str, parent_path: &[&str]) -> Option<ListShape> {
    let keyed = |patch_merge_key, map_keys| {
        Some(ListShape {
            patch_merge_key,
            map_keys,
        })
    };
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "webhooks" => keyed("name", &["name"]),
        "volumeMounts" | "volumeDevices" => keyed("mountPath", &["mountPath"]),
        "ownerReferences" => keyed("uid", &["uid"]),
        "conditions" => keyed("type", &["type"]),
        // A Service's ports merge by port; a container's by containerPort.
        "ports" if parent_path == ["spec"] => keyed("port", &["port", "protocol"]),
        "ports"
            if matches!(
                parent_path.last(),
                Some(&"containers") | Some(&"initContainers") | Some(&"ephemeralContainers")
            ) =>
        {
            keyed("containerPort", &["containerPort", "protocol"])
        }
        _ => None,
    }
}

/// The strategic merge key of a list, or `None` when it is replaced atomically.
pub fn patch_merge_key(field: &str, parent_path: &[&str]) -> Option<&'static str> {
    list_shape(field, parent_path).map(|s| s.patch_merge_key)
}

/// The server-side apply list-map keys of a list, or `None` when it is not a keyed list.
pub fn list_map_keys(field: &str, parent_path: &[&str]) -> Option<&'static [&'static str]> {
    list_shape(field, parent_path).map(|s| s.map_keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_resource_omits_the_core_group() {
        let kinds = builtin_kinds();
        assert_eq!(
            lookup(&kinds, "apps", "v1", "deployments")
                .unwrap()
                .group_resource(),
            "deployments.apps"
        );
        assert_eq!(
            lookup(&kinds, "", "v1", "services")
                .unwrap()
                .group_resource(),
            "services"
        );
    }

    #[test]
    fn both_trafficsplit_versions_share_one_storage() {
        let kinds = builtin_kinds();
        let a = lookup(&kinds, "split.smi-spec.io", "v1alpha1", "trafficsplits").unwrap();
        let b = lookup(&kinds, "split.smi-spec.io", "v1alpha2", "trafficsplits").unwrap();
        assert_eq!(a.storage_key(), b.storage_key());
    }

    #[test]
    fn service_ports_merge_by_port_and_container_ports_by_container_port() {
        assert_eq!(patch_merge_key("ports", &["spec"]), Some("port"));
        assert_eq!(
            patch_merge_key("ports", &["spec", "template", "spec", "containers"]),
            Some("containerPort")
        );
        assert_eq!(patch_merge_key("args", &["containers"]), None);
    }
}
