//! The ArgoCD `ignoreDifferences` the docs give for Applications that manage scaled workloads:
//! every field the scheduler writes, taken from the code, so the docs cannot miss one; and the
//! fleet's ApplicationSet (docs/fleet.md) rendered for one cluster.

use std::collections::BTreeSet;

use namespace_scheduler::scaling::kinds::{Switch, KINDS};
use serde_json::Value;

/// `(group, kind, JSON pointer)`.
pub type Ignored = BTreeSet<(String, String, String)>;

fn pointer(field: &str, key: &str) -> String {
    format!("/metadata/{field}/{}", key.replace('~', "~0").replace('/', "~1"))
}

/// Every field the scheduler writes on objects a team's Application may also manage.
pub fn fields_the_scheduler_writes() -> Ignored {
    let mut out = Ignored::new();
    let mut add = |group: &str, kind: &str, p: String| {
        out.insert((group.to_string(), kind.to_string(), p));
    };
    for k in KINDS {
        let value = match k.switch {
            Switch::Replicas => "/spec/replicas".into(),
            Switch::Suspend => "/spec/suspend".into(),
            Switch::PauseAnnotation { key, .. } => pointer("annotations", key),
            Switch::ScaleUpPolicy => "/spec/behavior/scaleUp/selectPolicy".into(),
        };
        add(k.group, k.kind, value);
        add(k.group, k.kind, pointer("annotations", k.marker));
    }
    for (field, key) in super::namespace_keys_the_scheduler_writes() {
        add("", "Namespace", pointer(field, &key));
    }
    out
}

/// The `spec.ignoreDifferences` of the one YAML block in a Markdown file that has them.
pub fn ignore_differences_in(markdown: &str, origin: &str) -> Ignored {
    let blocks: Vec<&str> = markdown
        .split("```yaml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .filter(|b| b.contains("ignoreDifferences:"))
        .collect();
    assert_eq!(blocks.len(), 1, "{origin}: one YAML block with ignoreDifferences");
    let doc: Value = namespace_scheduler::yaml::from_str(blocks[0])
        .unwrap_or_else(|e| panic!("{origin}: the block is not YAML: {e}"));
    let entries = doc["spec"]["ignoreDifferences"]
        .as_array()
        .unwrap_or_else(|| panic!("{origin}: spec.ignoreDifferences"));
    let mut out = Ignored::new();
    for e in entries {
        let (group, kind) = (
            e["group"].as_str().unwrap_or_default(),
            e["kind"].as_str().unwrap_or_default(),
        );
        for p in e["jsonPointers"].as_array().into_iter().flatten() {
            out.insert((group.into(), kind.into(), p.as_str().unwrap_or_default().into()));
        }
    }
    let opts = &doc["spec"]["syncPolicy"]["syncOptions"];
    assert!(
        opts.as_array()
            .is_some_and(|o| o.iter().any(|x| x == "RespectIgnoreDifferences=true")),
        "{origin}: syncOptions RespectIgnoreDifferences=true (else a sync still writes Git's values)"
    );
    out
}

/// docs/fleet.md's ApplicationSet, and the production overlay as Argo CD renders it for one
/// cluster: the template's inline kustomize patches, filled in for `cluster` and `role` as the
/// cluster generator fills them, added to a kustomization over the overlay.
pub fn fleet_applicationset_for(cluster: &str, role: &str) -> (Value, Vec<Value>) {
    let text = std::fs::read_to_string(super::repo_root().join("docs/fleet.md")).unwrap();
    let blocks: Vec<&str> = text
        .split("```yaml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .filter(|b| b.contains("kind: ApplicationSet"))
        .collect();
    assert_eq!(blocks.len(), 1, "docs/fleet.md: one ApplicationSet");
    let set: Value = namespace_scheduler::yaml::from_str(blocks[0]).expect("the ApplicationSet is YAML");
    let fill = |s: &str| {
        let filled = s
            .replace("{{.name}}", cluster)
            .replace("{{index .metadata.annotations \"namespace-scheduler/role-arn\"}}", role);
        assert!(!filled.contains("{{"), "an unknown template expression in {s}");
        filled
    };
    let patches: Vec<Value> = set["spec"]["template"]["spec"]["source"]["kustomize"]["patches"]
        .as_array()
        .expect("spec.template.spec.source.kustomize.patches")
        .iter()
        .map(|p| serde_json::json!({"target": p["target"], "patch": fill(p["patch"].as_str().unwrap())}))
        .collect();
    let dir = super::repo_root().join(format!("target/fleet-appset-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kustomization = serde_json::json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["../../manifests/overlays/production"],
        "patches": patches,
    });
    std::fs::write(
        dir.join("kustomization.yaml"),
        serde_saphyr::to_string(&kustomization).unwrap(),
    )
    .unwrap();
    let rel = dir
        .strip_prefix(super::repo_root())
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let rendered = super::kustomize(&rel);
    std::fs::remove_dir_all(&dir).unwrap();
    (set, rendered)
}

/// Rendered manifests without what the fleet's ApplicationSet sets per cluster.
pub fn without_cluster_name_and_role(docs: &[Value]) -> Vec<Value> {
    docs.iter()
        .map(|d| {
            let mut d = d.clone();
            if super::kind_of(&d) == "ConfigMap" && super::name_of(&d) == "namespace-scheduler-config" {
                d["data"]["EKS_CLUSTER_NAME"] = Value::Null;
            }
            if super::kind_of(&d) == "ServiceAccount" && super::name_of(&d) == "namespace-scheduler" {
                d["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] = Value::Null;
            }
            d
        })
        .collect()
}
