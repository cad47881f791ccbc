//! The settings every scheduler pod and Job must have (hardening, wiring, retries), checked on
//! the typed objects by tests/manifests.rs.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::JobSpec;
use k8s_openapi::api::core::v1::PodSpec;

use super::{Rendered, CONTAINER, RUNTIME_UID, SERVICE_ACCOUNT};

pub fn config_map<'a>(r: &'a Rendered, name: &str) -> &'a BTreeMap<String, String> {
    r.config_maps
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some(name))
        .and_then(|c| c.data.as_ref())
        .unwrap_or_else(|| panic!("ConfigMap {name} with data not rendered"))
}

/// The hardening and wiring every scheduler pod must have. `what` names it in messages.
pub fn assert_pod(what: &str, spec: &PodSpec, r: Option<&Rendered>) -> Vec<String> {
    assert_eq!(
        spec.restart_policy.as_deref(),
        Some("Never"),
        "{what}: restartPolicy must be Never (podFailurePolicy requires it)"
    );
    assert_eq!(
        spec.service_account_name.as_deref(),
        Some(SERVICE_ACCOUNT),
        "{what}: serviceAccountName"
    );
    assert_ne!(
        spec.automount_service_account_token,
        Some(false),
        "{what}: the binary needs its ServiceAccount token"
    );
    assert!(
        spec.host_network != Some(true) && spec.host_pid != Some(true) && spec.host_ipc != Some(true),
        "{what}: no host namespaces"
    );
    let psc = spec
        .security_context
        .as_ref()
        .unwrap_or_else(|| panic!("{what}: pod securityContext missing"));
    assert_eq!(psc.run_as_non_root, Some(true), "{what}: runAsNonRoot");
    assert_eq!(psc.run_as_user, Some(RUNTIME_UID), "{what}: runAsUser");
    assert_eq!(
        psc.seccomp_profile.as_ref().map(|p| p.type_.as_str()),
        Some("RuntimeDefault"),
        "{what}: seccompProfile RuntimeDefault"
    );

    assert_eq!(spec.containers.len(), 1, "{what}: one container");
    assert!(spec.init_containers.is_none(), "{what}: no init containers");
    let c = &spec.containers[0];
    assert_eq!(
        c.name, CONTAINER,
        "{what}: container name (podFailurePolicy refers to it)"
    );
    let image = c.image.as_deref().unwrap_or_else(|| panic!("{what}: no image"));
    assert!(
        image.contains(':') && !image.ends_with(":latest"),
        "{what}: image {image:?} must carry an explicit tag other than latest"
    );
    assert!(c.command.is_none(), "{what}: use the image ENTRYPOINT, set only args");

    let sc = c
        .security_context
        .as_ref()
        .unwrap_or_else(|| panic!("{what}: container securityContext missing"));
    assert_eq!(
        sc.read_only_root_filesystem,
        Some(true),
        "{what}: readOnlyRootFilesystem"
    );
    assert_eq!(
        sc.allow_privilege_escalation,
        Some(false),
        "{what}: allowPrivilegeEscalation"
    );
    assert_ne!(sc.privileged, Some(true), "{what}: privileged");
    let caps = sc
        .capabilities
        .as_ref()
        .unwrap_or_else(|| panic!("{what}: capabilities missing"));
    assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_string()][..]), "{what}: drop ALL");
    assert!(
        caps.add.as_ref().is_none_or(|a| a.is_empty()),
        "{what}: no added capabilities"
    );

    let res = c
        .resources
        .as_ref()
        .unwrap_or_else(|| panic!("{what}: resources missing"));
    for (kind, map) in [("requests", &res.requests), ("limits", &res.limits)] {
        let map = map
            .as_ref()
            .unwrap_or_else(|| panic!("{what}: resources.{kind} missing"));
        for key in ["cpu", "memory"] {
            assert!(map.contains_key(key), "{what}: resources.{kind}.{key} missing");
        }
    }
    let mem_limit = &res.limits.as_ref().unwrap()["memory"].0;
    assert!(
        mem_limit.ends_with("Mi") && mem_limit.trim_end_matches("Mi").parse::<u32>().unwrap() <= 512,
        "{what}: memory limit {mem_limit} is not small (a batch process needs <= 512Mi)"
    );

    let pod_ns = c
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "POD_NAMESPACE")
        .unwrap_or_else(|| panic!("{what}: env POD_NAMESPACE missing (the Lease namespace)"));
    assert_eq!(
        pod_ns
            .value_from
            .as_ref()
            .and_then(|v| v.field_ref.as_ref())
            .map(|f| f.field_path.as_str()),
        Some("metadata.namespace"),
        "{what}: POD_NAMESPACE must come from the downward API"
    );
    let cm_refs: Vec<&str> = c
        .env_from
        .iter()
        .flatten()
        .filter_map(|e| e.config_map_ref.as_ref().map(|c| c.name.as_str()))
        .collect();
    assert_eq!(cm_refs, ["namespace-scheduler-config"], "{what}: envFrom ConfigMap");
    if let Some(r) = r {
        config_map(r, cm_refs[0]);
    }
    c.args.clone().unwrap_or_else(|| panic!("{what}: args missing"))
}

pub fn assert_job_spec(what: &str, spec: &JobSpec, r: Option<&Rendered>) -> Vec<String> {
    let deadline = spec
        .active_deadline_seconds
        .unwrap_or_else(|| panic!("{what}: activeDeadlineSeconds missing"));
    assert!(
        (60..=3600).contains(&deadline),
        "{what}: activeDeadlineSeconds {deadline}"
    );
    let backoff = spec
        .backoff_limit
        .unwrap_or_else(|| panic!("{what}: backoffLimit missing"));
    assert!((0..=5).contains(&backoff), "{what}: backoffLimit {backoff}");
    let pfp = spec
        .pod_failure_policy
        .as_ref()
        .unwrap_or_else(|| panic!("{what}: podFailurePolicy missing"));
    for code in [2, 4] {
        let rule = pfp.rules.iter().find(|rule| {
            rule.on_exit_codes.as_ref().is_some_and(|e| {
                e.operator == "In"
                    && e.values.contains(&code)
                    && e.container_name.as_deref().is_none_or(|n| n == CONTAINER)
            })
        });
        assert_eq!(
            rule.map(|r| r.action.as_str()),
            Some("FailJob"),
            "{what}: podFailurePolicy must FailJob on exit code {code} (do not retry)"
        );
    }
    for rule in &pfp.rules {
        for cond in rule.on_pod_conditions.iter().flatten() {
            assert!(
                !cond.status.is_empty(),
                "{what}: podFailurePolicy onPodConditions {} needs status (required by a 1.28 apiserver)",
                cond.type_
            );
        }
    }
    for code in [1, 3] {
        assert!(
            !pfp.rules.iter().any(|rule| rule.action == "FailJob"
                && rule
                    .on_exit_codes
                    .as_ref()
                    .is_some_and(|e| { (e.operator == "In") == e.values.contains(&code) })),
            "{what}: exit code {code} is transient and must stay retryable"
        );
    }
    let pod = spec
        .template
        .spec
        .as_ref()
        .unwrap_or_else(|| panic!("{what}: pod spec missing"));
    assert_pod(what, pod, r)
}
