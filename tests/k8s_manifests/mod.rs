//! Rendering `manifests/` with `kubectl kustomize`, typing every object with `k8s-openapi`, and
//! checking RBAC grants against API requests: shared by `tests/manifests.rs` and by the e2e
//! suite, which feeds it the requests the binary really made against the API stand-in.
#![allow(dead_code)]

pub mod activation_requests;
pub mod argocd;
pub mod label_guard;
pub mod workloads;

use std::path::PathBuf;
use std::process::Command;

use k8s_openapi::api::admissionregistration::v1::{ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// The scheduler's namespace and ServiceAccount.
pub const NAMESPACE: &str = "task-scheduler";
pub const SERVICE_ACCOUNT: &str = "namespace-scheduler";
pub const LEASE_NAME: &str = "namespace-scheduler";
pub const CONTAINER: &str = "namespace-scheduler";
pub const RUNTIME_UID: i64 = 65532;

/// One API request: `(verb, API group, resource, namespace)`; namespace `None` = cluster-wide
/// (a cluster-scoped resource, or a namespaced resource across all namespaces).
pub type ApiCall = (&'static str, &'static str, &'static str, Option<&'static str>);

/// The API requests the binary makes (the brief's least-privilege list, docs/reference.md §4):
/// every kind of the scheduler's table of kinds is listed cluster-wide, read and patched in a
/// team's namespace; then the objects that are not workloads.
/// The RBAC must grant no more than these (`rbac_is_least_privilege`); that it grants every
/// request the code really makes is checked by the e2e test `rbac_grants_every_request_the_binary_makes`.
pub fn binary_api_requests() -> Vec<ApiCall> {
    let kinds = namespace_scheduler::scaling::kinds::KINDS.iter().flat_map(|k| {
        [
            ("list", k.group, k.plural, None),
            ("get", k.group, k.plural, Some("dev-example")),
            ("patch", k.group, k.plural, Some("dev-example")),
        ]
    });
    kinds.chain(OTHER_API_REQUESTS.iter().copied()).collect()
}

/// The requests of [`binary_api_requests`] that are not about a workload kind.
const OTHER_API_REQUESTS: &[ApiCall] = &[
    ("get", "", "namespaces", None),
    ("list", "", "namespaces", None),
    ("patch", "", "namespaces", None),
    ("list", "namespace-scheduler.io", "activationrequests", None),
    (
        "get",
        "namespace-scheduler.io",
        "activationrequests",
        Some("dev-example"),
    ),
    (
        "patch",
        "namespace-scheduler.io",
        "activationrequests/status",
        Some("dev-example"),
    ),
    ("create", "", "events", Some("dev-example")),
    ("create", "coordination.k8s.io", "leases", Some(NAMESPACE)),
    ("get", "coordination.k8s.io", "leases", Some(NAMESPACE)),
    ("update", "coordination.k8s.io", "leases", Some(NAMESPACE)),
    ("patch", "coordination.k8s.io", "leases", Some(NAMESPACE)),
];

/// The docs/reference.md §2 variables; any other ConfigMap key is a typo the binary would ignore.
pub const REFERENCE_VARIABLES: &[&str] = &[
    "EKS_CLUSTER_NAME",
    "AWS_REGION",
    "DYNAMODB_TABLE_NAME",
    "PERMISSIONS_TABLE_NAME",
    "WINDOWS_TABLE_NAME",
    "DYNAMODB_ENDPOINT_URL",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "BUSINESS_HOURS_TIMEZONE",
    "BUSINESS_START_HOUR",
    "BUSINESS_END_HOUR",
    "BUSINESS_DAYS",
    "BUSINESS_HOLIDAYS",
    "BUSINESS_HOLIDAYS_COUNTRY",
    "BUSINESS_HOLIDAYS_SUBDIVISION",
    "PROTECTED_NAMESPACES",
    "NAMESPACE_SELECTOR",
    "NON_BUSINESS_MAX_ACTIVE_NAMESPACES",
    "ROLLBACK_ENABLED",
    "SCALE_CONCURRENCY",
    "PERMISSIONS_CACHE_TTL",
    "PERMISSIONS_CACHE_ENABLED",
];

/// docs/reference.md §2 default protected namespaces: the binary's own list, so the two cannot drift.
pub const PROTECTED_DEFAULT: [&str; 15] = namespace_scheduler::config::DEFAULT_PROTECTED_NAMESPACES;

pub const ECR_REPOSITORY_SUFFIX: &str = ".dkr.ecr.us-east-1.amazonaws.com/namespace-scheduler";

// ---------------------------------------------------------------------------------------
// rendering and typing
// ---------------------------------------------------------------------------------------

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `kubectl kustomize <dir>` (dir relative to the repository root), split into documents.
pub fn kustomize(dir: &str) -> Vec<Value> {
    let path = repo_root().join(dir);
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(&path)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `kubectl kustomize {dir}`: {e}. kubectl is required for these tests \
                 (it is on every developer machine and CI runner)"
            )
        });
    assert!(
        output.status.success(),
        "`kubectl kustomize {dir}` failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("kustomize output is UTF-8");
    let docs = split_yaml(&text, dir);
    assert!(!docs.is_empty(), "`kubectl kustomize {dir}` rendered nothing");
    docs
}

/// Splits a multi-document YAML stream into JSON values, skipping empty documents.
pub fn split_yaml(text: &str, origin: &str) -> Vec<Value> {
    let docs: Vec<Value> =
        namespace_scheduler::yaml::from_multiple(text).unwrap_or_else(|e| panic!("{origin}: not valid YAML: {e}"));
    docs.into_iter().filter(|v| !v.is_null()).collect()
}

pub fn read_yaml_file(rel: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(repo_root().join(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"));
    split_yaml(&text, rel)
}

pub fn kind_of(v: &Value) -> &str {
    v["kind"].as_str().unwrap_or("<no kind>")
}

pub fn name_of(v: &Value) -> &str {
    v["metadata"]["name"]
        .as_str()
        .or_else(|| v["metadata"]["generateName"].as_str())
        .unwrap_or("<no name>")
}

/// Deserializes `v` into `T` and checks that serializing it back gives the same document,
/// i.e. that no field was unknown to the typed struct (and thus silently ignored).
pub fn typed<T: DeserializeOwned + Serialize>(v: &Value) -> T {
    let what = format!("{} {}", kind_of(v), name_of(v));
    let t: T = serde_json::from_value(v.clone())
        .unwrap_or_else(|e| panic!("{what} does not deserialize into its k8s-openapi type: {e}"));
    let back = serde_json::to_value(&t).expect("serialize back");
    let mut lost = Vec::new();
    diff_fields(v, &back, String::new(), &mut lost);
    assert!(
        lost.is_empty(),
        "{what}: fields unknown to the k8s-openapi type (misspelt or misplaced?): {lost:?}"
    );
    t
}

pub fn diff_fields(orig: &Value, back: &Value, path: String, lost: &mut Vec<String>) {
    match (orig, back) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                match b.get(k) {
                    Some(vb) => diff_fields(va, vb, format!("{path}.{k}"), lost),
                    None if va.is_null() => {}
                    None => lost.push(format!("{path}.{k}")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (va, vb)) in a.iter().zip(b).enumerate() {
                diff_fields(va, vb, format!("{path}[{i}]"), lost);
            }
            if a.len() != b.len() {
                lost.push(format!("{path} (length {} vs {})", a.len(), b.len()));
            }
        }
        _ => {}
    }
}

/// Every rendered object, typed.
#[derive(Default)]
pub struct Rendered {
    pub namespaces: Vec<Namespace>,
    pub service_accounts: Vec<ServiceAccount>,
    pub config_maps: Vec<ConfigMap>,
    pub cluster_roles: Vec<ClusterRole>,
    pub cluster_role_bindings: Vec<ClusterRoleBinding>,
    pub roles: Vec<Role>,
    pub role_bindings: Vec<RoleBinding>,
    pub cron_jobs: Vec<CronJob>,
    pub jobs: Vec<Job>,
    pub admission_policies: Vec<ValidatingAdmissionPolicy>,
    pub admission_policy_bindings: Vec<ValidatingAdmissionPolicyBinding>,
    pub custom_resource_definitions: Vec<CustomResourceDefinition>,
    /// Custom resources (Kyverno ClusterPolicy, ArgoCD Application), untyped.
    pub custom: Vec<Value>,
}

pub fn type_all(docs: &[Value], origin: &str) -> Rendered {
    let mut r = Rendered::default();
    for d in docs {
        let api_version = d["apiVersion"].as_str().unwrap_or("");
        match (api_version, kind_of(d)) {
            ("v1", "Namespace") => r.namespaces.push(typed(d)),
            ("v1", "ServiceAccount") => r.service_accounts.push(typed(d)),
            ("v1", "ConfigMap") => r.config_maps.push(typed(d)),
            ("rbac.authorization.k8s.io/v1", "ClusterRole") => r.cluster_roles.push(typed(d)),
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => r.cluster_role_bindings.push(typed(d)),
            ("rbac.authorization.k8s.io/v1", "Role") => r.roles.push(typed(d)),
            ("rbac.authorization.k8s.io/v1", "RoleBinding") => r.role_bindings.push(typed(d)),
            ("batch/v1", "CronJob") => r.cron_jobs.push(typed(d)),
            ("batch/v1", "Job") => r.jobs.push(typed(d)),
            ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy") => r.admission_policies.push(typed(d)),
            ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding") => {
                r.admission_policy_bindings.push(typed(d))
            }
            ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => r.custom_resource_definitions.push(typed(d)),
            ("kyverno.io/v1", "ClusterPolicy") | ("argoproj.io/v1alpha1", "Application") => r.custom.push(d.clone()),
            (a, k) => panic!(
                "{origin}: unexpected object {a} {k} {}: add it to type_all with its k8s-openapi type",
                name_of(d)
            ),
        }
    }
    r
}

// ---------------------------------------------------------------------------------------
// RBAC
// ---------------------------------------------------------------------------------------

/// One API request, as RBAC authorizes it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiRequest {
    pub verb: String,
    pub group: String,
    /// `deployments`, or `deployments/scale` for a subresource.
    pub resource: String,
    /// `None`: cluster-wide (cluster-scoped resource or all namespaces).
    pub namespace: Option<String>,
    /// `None`: no name (list, create) or not known.
    pub name: Option<String>,
}

impl std::fmt::Display for ApiRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let group = if self.group.is_empty() { "core" } else { &self.group };
        write!(f, "{} {}/{}", self.verb, group, self.resource)?;
        if let Some(n) = &self.name {
            write!(f, " {n}")?;
        }
        match &self.namespace {
            Some(ns) => write!(f, " in namespace {ns}"),
            None => write!(f, " cluster-wide"),
        }
    }
}

/// Maps an HTTP request to the Kubernetes API (method and path with optional query, as an
/// API stand-in sees it) to the RBAC request it needs. `None` for non-resource paths
/// (discovery: `/api`, `/apis`, `/version`, `/openapi/...`), which the default
/// `system:discovery` ClusterRole already allows.
pub fn api_request_from_http(method: &str, path_and_query: &str) -> Option<ApiRequest> {
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match segs.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return None,
    };
    let (namespace, resource, name, sub) = match rest {
        [] => return None,
        ["namespaces", ns, resource, tail @ ..] if !matches!(*resource, "status" | "finalize") => {
            (Some(*ns), *resource, tail.first().copied(), tail.get(1).copied())
        }
        [resource, tail @ ..] => (None, *resource, tail.first().copied(), tail.get(1).copied()),
    };
    let watch = query.split('&').any(|kv| kv == "watch=true" || kv == "watch=1");
    let verb = match (method.to_ascii_uppercase().as_str(), name.is_some()) {
        ("GET", _) if watch => "watch",
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        (m, _) => panic!("unexpected HTTP method {m} for {path_and_query}"),
    };
    let resource = match sub {
        Some(s) => format!("{resource}/{s}"),
        None => resource.to_string(),
    };
    Some(ApiRequest {
        verb: verb.into(),
        group: group.into(),
        resource,
        namespace: namespace.map(str::to_string),
        // create: the name is in the body, RBAC sees none
        name: if verb == "create" {
            None
        } else {
            name.map(str::to_string)
        },
    })
}

pub fn rule_allows(rule: &PolicyRule, req: &ApiRequest, strict_names: bool) -> bool {
    let has =
        |list: &Option<Vec<String>>, want: &str| list.as_ref().is_some_and(|l| l.iter().any(|x| x == want || x == "*"));
    if !rule.verbs.iter().any(|v| v == &req.verb || v == "*") {
        return false;
    }
    if !has(&rule.api_groups, &req.group) || !has(&rule.resources, &req.resource) {
        return false;
    }
    match rule.resource_names.as_deref() {
        None | Some([]) => true,
        Some(names) => match &req.name {
            Some(n) => names.iter().any(|x| x == n),
            // name unknown (4-tuple form): assume the binary uses one of the allowed names
            None => !strict_names && !matches!(req.verb.as_str(), "list" | "watch" | "create"),
        },
    }
}

pub fn binds_scheduler(subjects: &Option<Vec<k8s_openapi::api::rbac::v1::Subject>>) -> bool {
    subjects
        .iter()
        .flatten()
        .any(|s| s.kind == "ServiceAccount" && s.name == SERVICE_ACCOUNT && s.namespace.as_deref() == Some(NAMESPACE))
}

/// The rules granted to the scheduler's ServiceAccount: `(namespace scope, rule)`;
/// scope `None` = everywhere (ClusterRoleBinding), `Some(ns)` = only in `ns` (RoleBinding).
pub fn scheduler_rules(r: &Rendered) -> Vec<(Option<String>, PolicyRule)> {
    let cluster_role = |name: &str| {
        r.cluster_roles
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(name))
    };
    let mut out = Vec::new();
    for b in &r.cluster_role_bindings {
        if !binds_scheduler(&b.subjects) {
            continue;
        }
        assert_eq!(b.role_ref.kind, "ClusterRole");
        let cr = cluster_role(&b.role_ref.name).unwrap_or_else(|| {
            panic!(
                "ClusterRoleBinding {:?} refers to missing ClusterRole {}",
                b.metadata.name, b.role_ref.name
            )
        });
        for rule in cr.rules.iter().flatten() {
            out.push((None, rule.clone()));
        }
    }
    for b in &r.role_bindings {
        if !binds_scheduler(&b.subjects) {
            continue;
        }
        let ns = b
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| panic!("RoleBinding {:?} has no namespace", b.metadata.name));
        let rules: Vec<PolicyRule> = match b.role_ref.kind.as_str() {
            "ClusterRole" => cluster_role(&b.role_ref.name)
                .and_then(|c| c.rules.clone())
                .unwrap_or_default(),
            "Role" => r
                .roles
                .iter()
                .find(|role| {
                    role.metadata.name.as_deref() == Some(b.role_ref.name.as_str())
                        && role.metadata.namespace.as_deref() == Some(ns.as_str())
                })
                .unwrap_or_else(|| {
                    panic!(
                        "RoleBinding {:?} refers to missing Role {} in {ns}",
                        b.metadata.name, b.role_ref.name
                    )
                })
                .rules
                .clone()
                .unwrap_or_default(),
            k => panic!("RoleBinding {:?}: roleRef kind {k}", b.metadata.name),
        };
        out.extend(rules.into_iter().map(|rule| (Some(ns.clone()), rule)));
    }
    out
}

/// The requests of `needed` that the scheduler's RBAC does not grant, as readable lines.
/// With `strict_names`, a rule limited by `resourceNames` grants only requests naming one
/// of those names; otherwise a request without a name is assumed to use an allowed one.
pub fn rbac_missing_requests(r: &Rendered, needed: &[ApiRequest], strict_names: bool) -> Vec<String> {
    let rules = scheduler_rules(r);
    needed
        .iter()
        .filter(|req| {
            !rules.iter().any(|(scope, rule)| {
                let in_scope = match (scope, &req.namespace) {
                    (None, _) => true,
                    (Some(s), Some(ns)) => s == ns,
                    (Some(_), None) => false,
                };
                in_scope && rule_allows(rule, req, strict_names)
            })
        })
        .map(|req| format!("{SERVICE_ACCOUNT} may not {req}"))
        .collect()
}

/// The reusable check: `(verb, group, resource, namespace)` tuples that the RBAC does not
/// grant. Namespace `None` = cluster-wide.
pub fn rbac_missing_grants(r: &Rendered, needed: &[(&str, &str, &str, Option<&str>)]) -> Vec<String> {
    let reqs: Vec<ApiRequest> = needed
        .iter()
        .map(|(verb, group, resource, ns)| ApiRequest {
            verb: verb.to_string(),
            group: group.to_string(),
            resource: resource.to_string(),
            namespace: ns.map(str::to_string),
            name: None,
        })
        .collect();
    rbac_missing_requests(r, &reqs, false)
}

/// Panics, listing every missing grant, unless the RBAC grants all of `needed`.
pub fn assert_rbac_grants(r: &Rendered, needed: &[(&str, &str, &str, Option<&str>)]) {
    let missing = rbac_missing_grants(r, needed);
    assert!(
        missing.is_empty(),
        "RBAC (manifests/base/rbac.yaml) is missing grants:\n  {}",
        missing.join("\n  ")
    );
}

/// The ClusterRoles a binding gives the scheduler's ServiceAccount.
pub fn scheduler_cluster_roles(r: &Rendered) -> Vec<&ClusterRole> {
    let names: Vec<&str> = r
        .cluster_role_bindings
        .iter()
        .filter(|b| binds_scheduler(&b.subjects))
        .map(|b| b.role_ref.name.as_str())
        .chain(
            r.role_bindings
                .iter()
                .filter(|b| binds_scheduler(&b.subjects) && b.role_ref.kind == "ClusterRole")
                .map(|b| b.role_ref.name.as_str()),
        )
        .collect();
    r.cluster_roles
        .iter()
        .filter(|c| c.metadata.name.as_deref().is_some_and(|n| names.contains(&n)))
        .collect()
}

/// Everything the scheduler's RBAC must never contain.
pub fn rbac_violations(r: &Rendered) -> Vec<String> {
    let mut bad = Vec::new();
    let mut check = |owner: String, rules: &[PolicyRule]| {
        for (i, rule) in rules.iter().enumerate() {
            let at = format!("{owner} rule {i}");
            let all = rule
                .verbs
                .iter()
                .chain(rule.api_groups.iter().flatten())
                .chain(rule.resources.iter().flatten())
                .chain(rule.resource_names.iter().flatten())
                .chain(rule.non_resource_urls.iter().flatten());
            for s in all {
                if s.contains('*') {
                    bad.push(format!("{at}: wildcard {s:?}"));
                }
            }
            for res in rule.resources.iter().flatten() {
                if res == "secrets" || res.starts_with("secrets/") {
                    bad.push(format!("{at}: grants access to {res}"));
                }
            }
            for v in &rule.verbs {
                if matches!(
                    v.as_str(),
                    "delete" | "deletecollection" | "escalate" | "bind" | "impersonate"
                ) {
                    bad.push(format!("{at}: verb {v}"));
                }
            }
            if rule.non_resource_urls.is_some() {
                bad.push(format!("{at}: nonResourceURLs"));
            }
        }
    };
    for c in scheduler_cluster_roles(r) {
        assert!(
            c.aggregation_rule.is_none(),
            "ClusterRole {:?} must not aggregate",
            c.metadata.name
        );
        check(
            format!("ClusterRole {}", c.metadata.name.as_deref().unwrap_or("")),
            c.rules.as_deref().unwrap_or_default(),
        );
    }
    for role in &r.roles {
        check(
            format!("Role {}", role.metadata.name.as_deref().unwrap_or("")),
            role.rules.as_deref().unwrap_or_default(),
        );
    }
    bad
}

/// Every key the scheduler writes on a Namespace, with the field it sits in (`labels` or
/// `annotations`): `NsMeta`'s patch from nothing to every key set, so the list comes from the code.
pub fn namespace_keys_the_scheduler_writes() -> Vec<(&'static str, String)> {
    use namespace_scheduler::scaling::plan::NsMeta;
    let all = NsMeta {
        status: Some("x".into()),
        active_until: Some("x".into()),
        active_cost_center: Some("x".into()),
        active_request: Some("x".into()),
        legacy_answer: true,
    };
    let patch = NsMeta::default().patch_to(&all);
    let keys: Vec<_> = ["labels", "annotations"]
        .into_iter()
        .flat_map(|field| {
            let keys = patch["metadata"][field].as_object().cloned().unwrap_or_default();
            keys.into_iter().map(move |(k, _)| (field, k))
        })
        .collect();
    assert!(keys.len() >= 4, "NsMeta's patch names too few keys: {keys:?}");
    keys
}
