//! The ActivationRequest CRD and the rights teams get on requests, as rendered.

use super::Rendered;

/// The ActivationRequest CRD as the binary reads it (docs/reference.md §5), and the rights teams
/// get on requests through the built-in roles: everything but their status.
pub fn assert_activation_requests(r: &Rendered, origin: &str) {
    use namespace_scheduler::self_service::{MESSAGE_MAX_BYTES, REQUESTED_BY_MAX_CHARS, UNTIL_MAX_CHARS};
    assert_eq!(r.custom_resource_definitions.len(), 1, "{origin}: one CRD");
    let crd = serde_json::to_value(&r.custom_resource_definitions[0]).unwrap();
    let spec = &crd["spec"];
    assert_eq!(crd["metadata"]["name"], "activationrequests.namespace-scheduler.io");
    assert_eq!(spec["group"], "namespace-scheduler.io");
    assert_eq!(spec["scope"], "Namespaced");
    assert_eq!(spec["names"]["kind"], "ActivationRequest");
    let versions = spec["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 1);
    let v = &versions[0];
    assert_eq!(
        (&v["name"], &v["served"], &v["storage"]),
        (
            &serde_json::json!("v1alpha1"),
            &serde_json::json!(true),
            &serde_json::json!(true)
        )
    );
    assert!(
        v["subresources"]["status"].is_object(),
        "{origin}: the status subresource"
    );
    let columns: Vec<&str> = v["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["jsonPath"].as_str())
        .collect();
    for path in [".status.phase", ".spec.until", ".status.message"] {
        assert!(columns.contains(&path), "{origin}: printer column {path}: {columns:?}");
    }
    let schema = &v["schema"]["openAPIV3Schema"]["properties"];
    let s = &schema["spec"];
    assert_eq!(s["required"], serde_json::json!(["until", "requestedBy"]));
    let until = &s["properties"]["until"];
    assert_eq!(
        (until["format"].as_str(), until["maxLength"].as_u64()),
        (Some("date-time"), Some(UNTIL_MAX_CHARS as u64))
    );
    assert_eq!(
        s["properties"]["requestedBy"]["maxLength"].as_u64(),
        Some(REQUESTED_BY_MAX_CHARS as u64)
    );
    assert!(
        s["properties"]["reason"]["maxLength"].as_u64().is_some(),
        "{origin}: every field bounded"
    );
    let st = &schema["status"]["properties"];
    assert_eq!(st["message"]["maxLength"].as_u64(), Some(MESSAGE_MAX_BYTES as u64));
    assert_eq!(
        st["phase"]["enum"],
        serde_json::json!(["Pending", "Accepted", "Rejected", "Ended"])
    );
    assert_eq!(st["observedGeneration"]["type"], "integer");

    let role = |name: &str| {
        r.cluster_roles
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("{origin}: ClusterRole {name}"))
    };
    for (name, aggregate_to, verbs) in [
        (
            "namespace-scheduler-activationrequests-edit",
            &["edit", "admin"][..],
            &["create", "get", "list", "watch", "update", "patch", "delete"][..],
        ),
        (
            "namespace-scheduler-activationrequests-view",
            &["view"][..],
            &["get", "list", "watch"][..],
        ),
    ] {
        let c = role(name);
        let labels = c.metadata.labels.clone().unwrap_or_default();
        for to in aggregate_to {
            let key = format!("rbac.authorization.k8s.io/aggregate-to-{to}");
            assert_eq!(
                labels.get(&key).map(String::as_str),
                Some("true"),
                "{origin}: {name} {key}"
            );
        }
        let rules = c.rules.as_deref().unwrap_or_default();
        assert_eq!(rules.len(), 1, "{origin}: {name}");
        assert_eq!(
            rules[0].api_groups.as_deref(),
            Some(&["namespace-scheduler.io".to_string()][..])
        );
        assert_eq!(
            rules[0].resources.as_deref(),
            Some(&["activationrequests".to_string()][..]),
            "{origin}: {name}: the requests, never their status"
        );
        assert_eq!(rules[0].verbs, verbs, "{origin}: {name}");
    }
}
