//! Offline checks of the Kubernetes manifests (docs/reference.md §7, issue 5).
//!
//! Renders `manifests/base`, `manifests/overlays/production` (with the label-guard component),
//! `manifests/components/label-guard` and the base with the Kyverno component
//! (`manifests/tests/kyverno`) with `kubectl kustomize`, deserializes every object into its typed
//! `k8s-openapi` struct (CRDs such as Kyverno's ClusterPolicy and ArgoCD's Application stay
//! `serde_json::Value`), checks that the typed struct loses no field (a misspelt or misplaced
//! field would otherwise be silently dropped), and asserts the CronJob/Job settings, the
//! hardening, the RBAC, the label guard and the production environment.
//!
//! Offline only. That the same manifests apply to a real apiserver, that the RBAC is enough for
//! a full cycle with the ServiceAccount's own token, and that the label guard refuses a team
//! user, is proved on a real control plane by the e2e tests in `tests/e2e/manifests_real.rs`;
//! that the RBAC grants every request the binary makes, by `rbac_grants_every_request_the_binary_makes`.

use k8s_openapi::api::batch::v1::{CronJob, Job};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

mod k8s_manifests;
use k8s_manifests::label_guard::assert_label_guard;
use k8s_manifests::workloads::*;
use k8s_manifests::*;

fn cron_job<'a>(r: &'a Rendered, name: &str) -> &'a CronJob {
    r.cron_jobs
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("CronJob {name} not rendered"))
}

fn assert_cron_jobs(r: &Rendered) {
    assert_eq!(
        r.cron_jobs.len(),
        3,
        "expected startup, shutdown and reconcile CronJobs"
    );
    let cm = config_map(r, "namespace-scheduler-config");
    let start: u32 = cm["BUSINESS_START_HOUR"].parse().unwrap();
    let end: u32 = cm["BUSINESS_END_HOUR"].parse().unwrap();
    let zone = &cm["BUSINESS_HOURS_TIMEZONE"];
    for (name, schedule) in [
        ("namespace-scheduler-startup", format!("0 {start} * * 1-5")),
        ("namespace-scheduler-shutdown", format!("0 {end} * * 1-5")),
    ] {
        assert_eq!(
            cron_job(r, name).spec.as_ref().unwrap().schedule,
            schedule,
            "CronJob {name}: schedule must match the business hours of the ConfigMap"
        );
    }
    // per-namespace schedules are minute-precise: the reconcile run looks every 15 minutes,
    // every day (docs/schedules.md, "When changes happen")
    let reconcile = &cron_job(r, "namespace-scheduler-reconcile")
        .spec
        .as_ref()
        .unwrap()
        .schedule;
    assert_eq!(
        reconcile, "*/15 * * * *",
        "reconcile must run every 15 minutes of every day"
    );

    for cj in &r.cron_jobs {
        let name = cj.metadata.name.as_deref().unwrap();
        let what = format!("CronJob {name}");
        let spec = cj.spec.as_ref().unwrap();
        assert_eq!(spec.time_zone.as_deref(), Some("America/Bogota"), "{what}: timeZone");
        assert_eq!(
            spec.time_zone.as_deref(),
            Some(zone.as_str()),
            "{what}: timeZone must equal BUSINESS_HOURS_TIMEZONE"
        );
        assert_eq!(
            spec.concurrency_policy.as_deref(),
            Some("Forbid"),
            "{what}: concurrencyPolicy"
        );
        let sd = spec
            .starting_deadline_seconds
            .unwrap_or_else(|| panic!("{what}: startingDeadlineSeconds missing"));
        assert!((10..=1800).contains(&sd), "{what}: startingDeadlineSeconds {sd}");
        assert!(
            spec.successful_jobs_history_limit
                .is_some_and(|n| (1..=10).contains(&n)),
            "{what}: successfulJobsHistoryLimit"
        );
        assert!(
            spec.failed_jobs_history_limit.is_some_and(|n| (1..=10).contains(&n)),
            "{what}: failedJobsHistoryLimit"
        );
        assert_ne!(spec.suspend, Some(true), "{what}: suspended");
        let job = spec
            .job_template
            .spec
            .as_ref()
            .unwrap_or_else(|| panic!("{what}: jobTemplate.spec missing"));
        let args = assert_job_spec(&what, job, Some(r));
        assert_eq!(
            args,
            ["run", "--output", "json"],
            "{what}: every CronJob runs `run` (JSON summary)"
        );
    }
}

fn assert_populate_job(r: &Rendered) {
    let job = r
        .jobs
        .iter()
        .find(|j| j.metadata.name.as_deref() == Some("namespace-scheduler-populate"))
        .expect("Job namespace-scheduler-populate not rendered");
    let spec = job.spec.as_ref().unwrap();
    assert_eq!(
        spec.ttl_seconds_after_finished,
        Some(300),
        "populate Job: ttlSecondsAfterFinished"
    );
    let args = assert_job_spec("Job namespace-scheduler-populate", spec, Some(r));
    assert_eq!(args, ["populate", "--output", "json"], "populate Job args");
}

fn assert_common(r: &Rendered, origin: &str) {
    let ns: Vec<_> = r.namespaces.iter().filter_map(|n| n.metadata.name.as_deref()).collect();
    assert_eq!(ns, [NAMESPACE], "{origin}: Namespace");
    let sa = r
        .service_accounts
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some(SERVICE_ACCOUNT))
        .unwrap_or_else(|| panic!("{origin}: ServiceAccount {SERVICE_ACCOUNT} missing"));
    assert_eq!(sa.metadata.namespace.as_deref(), Some(NAMESPACE));
    let arn = sa
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("eks.amazonaws.com/role-arn"))
        .unwrap_or_else(|| panic!("{origin}: ServiceAccount lacks eks.amazonaws.com/role-arn"));
    assert_role_arn(arn);

    // every namespaced object lands in task-scheduler
    for (kind, name, namespace) in r
        .config_maps
        .iter()
        .map(|o| ("ConfigMap", &o.metadata))
        .chain(r.cron_jobs.iter().map(|o| ("CronJob", &o.metadata)))
        .chain(r.jobs.iter().map(|o| ("Job", &o.metadata)))
        .chain(r.roles.iter().map(|o| ("Role", &o.metadata)))
        .chain(r.role_bindings.iter().map(|o| ("RoleBinding", &o.metadata)))
        .map(|(k, m)| (k, m.name.clone(), m.namespace.clone()))
    {
        assert_eq!(
            namespace.as_deref(),
            Some(NAMESPACE),
            "{origin}: {kind} {name:?} namespace"
        );
    }

    let cm = config_map(r, "namespace-scheduler-config");
    for key in cm.keys() {
        assert!(
            REFERENCE_VARIABLES.contains(&key.as_str()),
            "{origin}: ConfigMap key {key} is not a docs/reference.md §2 variable"
        );
    }
    let protected: BTreeSet<&str> = cm["PROTECTED_NAMESPACES"].split(',').map(str::trim).collect();
    for p in PROTECTED_DEFAULT {
        assert!(protected.contains(p), "{origin}: PROTECTED_NAMESPACES lacks {p}");
    }
    assert_eq!(
        cm.get("BUSINESS_HOURS_TIMEZONE").map(String::as_str),
        Some("America/Bogota")
    );

    let violations = rbac_violations(r);
    assert!(
        violations.is_empty(),
        "{origin}: RBAC violations:\n  {}",
        violations.join("\n  ")
    );
    assert_rbac_grants(r, &binary_api_requests());
    assert_cron_jobs(r);
    assert_populate_job(r);
    k8s_manifests::activation_requests::assert_activation_requests(r, origin);
}

/// `arn:aws:iam::<12 digits>:role/<name>`
fn assert_role_arn(arn: &str) {
    let rest = arn
        .strip_prefix("arn:aws:iam::")
        .unwrap_or_else(|| panic!("IRSA role ARN {arn:?} is not an IAM ARN"));
    let (account, role) = rest
        .split_once(":role/")
        .unwrap_or_else(|| panic!("not a role ARN: {arn}"));
    assert!(
        account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()),
        "IRSA role ARN {arn:?}: account id"
    );
    assert!(!role.is_empty(), "IRSA role ARN {arn:?}: role name");
}

// ---------------------------------------------------------------------------------------
// tests
// ---------------------------------------------------------------------------------------

#[test]
fn base_renders_typed_and_hardened() {
    let docs = kustomize("manifests/base");
    let r = type_all(&docs, "manifests/base");
    assert!(r.custom.is_empty(), "base has no custom resources");
    assert_common(&r, "manifests/base");
}

#[test]
fn rbac_is_least_privilege() {
    let r = type_all(&kustomize("manifests/base"), "manifests/base");
    // the lease rules are confined to the scheduler's namespace and, except create, to its name
    let rules = scheduler_rules(&r);
    for (scope, rule) in &rules {
        if rule.resources.iter().flatten().any(|x| x == "leases") {
            assert_eq!(scope.as_deref(), Some(NAMESPACE), "leases only in {NAMESPACE}");
            let named = rule.resource_names.as_deref().unwrap_or_default();
            if named.is_empty() {
                assert_eq!(rule.verbs, ["create"], "unnamed lease rule may only create");
            } else {
                assert_eq!(named, [LEASE_NAME]);
            }
        }
    }
    let named = |verb: &str, name: &str| ApiRequest {
        verb: verb.into(),
        group: "coordination.k8s.io".into(),
        resource: "leases".into(),
        namespace: Some(NAMESPACE.into()),
        name: Some(name.into()),
    };
    let mut want: Vec<ApiRequest> = ["get", "update", "patch"]
        .iter()
        .map(|v| named(v, LEASE_NAME))
        .collect();
    want.push(ApiRequest {
        name: None,
        ..named("create", LEASE_NAME)
    });
    let missing = rbac_missing_requests(&r, &want, true);
    assert!(missing.is_empty(), "lease grants missing: {missing:?}");

    // and nothing beyond the list: each granted (verb, group, resource) is needed
    let needed: BTreeSet<(&str, &str, &str)> = binary_api_requests()
        .into_iter()
        .map(|(v, g, res, _)| (v, g, res))
        .collect();
    for (_, rule) in &rules {
        for v in &rule.verbs {
            for g in rule.api_groups.iter().flatten() {
                for res in rule.resources.iter().flatten() {
                    assert!(
                        needed.contains(&(v.as_str(), g.as_str(), res.as_str())),
                        "RBAC grants {v} {}/{res}, which the binary does not use",
                        if g.is_empty() { "core" } else { g }
                    );
                }
            }
        }
    }

    // the check itself notices what is not granted
    for (req, why) in [
        (("delete", "apps", "deployments", None), "delete"),
        (("get", "", "secrets", Some("dev-a")), "secrets"),
        (
            ("create", "coordination.k8s.io", "leases", Some("dev-a")),
            "lease outside its namespace",
        ),
        (
            ("patch", "apps", "deployments/scale", Some("dev-a")),
            "scale subresource",
        ),
        (("list", "coordination.k8s.io", "leases", None), "cluster-wide leases"),
    ] {
        assert_eq!(rbac_missing_grants(&r, &[req]).len(), 1, "RBAC must not grant {why}");
    }
    let not_our_lease = named("get", "someone-elses-lease");
    assert_eq!(rbac_missing_requests(&r, &[not_our_lease], true).len(), 1);
}

#[test]
fn http_requests_map_to_rbac_requests() {
    let r = |m, p| api_request_from_http(m, p).map(|a| a.to_string());
    assert_eq!(
        r("GET", "/api/v1/namespaces?limit=500").unwrap(),
        "list core/namespaces cluster-wide"
    );
    assert_eq!(
        r("PATCH", "/api/v1/namespaces/dev-a").unwrap(),
        "patch core/namespaces dev-a cluster-wide"
    );
    assert_eq!(
        r("GET", "/apis/apps/v1/deployments?limit=500&continue=x").unwrap(),
        "list apps/deployments cluster-wide"
    );
    assert_eq!(
        r("PATCH", "/apis/apps/v1/namespaces/dev-a/statefulsets/db").unwrap(),
        "patch apps/statefulsets db in namespace dev-a"
    );
    assert_eq!(
        r("PUT", "/apis/apps/v1/namespaces/dev-a/deployments/web/scale").unwrap(),
        "update apps/deployments/scale web in namespace dev-a"
    );
    assert_eq!(
        r("POST", "/apis/coordination.k8s.io/v1/namespaces/task-scheduler/leases").unwrap(),
        "create coordination.k8s.io/leases in namespace task-scheduler"
    );
    assert_eq!(
        r("GET", "/api/v1/namespaces/dev-a/events?watch=true").unwrap(),
        "watch core/events in namespace dev-a"
    );
    assert_eq!(
        r("GET", "/api/v1/namespaces/dev-a/status").unwrap(),
        "get core/namespaces/status dev-a cluster-wide"
    );
    assert_eq!(
        r("DELETE", "/apis/batch/v1/namespaces/x/cronjobs").unwrap(),
        "deletecollection batch/cronjobs in namespace x"
    );
    assert_eq!(r("GET", "/apis"), None);
    assert_eq!(r("GET", "/api/v1"), None);
    assert_eq!(r("GET", "/version"), None);
}

#[test]
fn production_overlay() {
    let docs = kustomize("manifests/overlays/production");
    let r = type_all(&docs, "manifests/overlays/production");
    assert_common(&r, "manifests/overlays/production");

    let cm = config_map(&r, "namespace-scheduler-config");
    for (key, want) in [
        ("AWS_REGION", Some("us-east-1")),
        ("DYNAMODB_TABLE_NAME", Some("task-scheduler-logs-production")),
        ("PERMISSIONS_TABLE_NAME", Some("cost-center-permissions-production")),
        ("WINDOWS_TABLE_NAME", Some("namespace-scheduler-windows-production")),
        ("LOG_FORMAT", Some("json")),
        ("LOG_LEVEL", Some("INFO")),
        ("EKS_CLUSTER_NAME", None),
    ] {
        let got = cm
            .get(key)
            .unwrap_or_else(|| panic!("production ConfigMap lacks {key}"));
        match want {
            Some(w) => assert_eq!(got, w, "production {key}"),
            None => assert!(!got.is_empty() && got != "local", "production {key} = {got:?}"),
        }
    }
    assert!(
        !cm.contains_key("DYNAMODB_ENDPOINT_URL"),
        "production must use the real DynamoDB endpoint"
    );

    let pods = r
        .cron_jobs
        .iter()
        .filter_map(|c| c.spec.as_ref()?.job_template.spec.as_ref())
        .chain(r.jobs.iter().filter_map(|j| j.spec.as_ref()))
        .filter_map(|j| j.template.spec.as_ref());
    let mut n = 0;
    for pod in pods {
        for c in &pod.containers {
            let image = c.image.as_deref().unwrap();
            let (repo, tag) = image.rsplit_once(':').unwrap();
            let account = repo
                .strip_suffix(ECR_REPOSITORY_SUFFIX)
                .unwrap_or_else(|| panic!("production image {image} is not the ECR repository"));
            assert!(
                account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()),
                "production image {image}: ECR account"
            );
            assert!(!tag.is_empty() && tag != "latest", "production image tag {tag:?}");
            n += 1;
        }
    }
    assert_eq!(n, 4, "three CronJobs and the populate Job");
    assert_label_guard(&r, "manifests/overlays/production");
    let groups = k8s_manifests::label_guard::platform_groups(&r, "manifests/overlays/production");
    assert_eq!(
        groups,
        ["system:masters", "platform-admins"],
        "the production overlay names the platform"
    );

    // the tag is managed through kustomize `images:` so CI can `kustomize edit set image`
    let k: Value = namespace_scheduler::yaml::from_str(
        &std::fs::read_to_string(repo_root().join("manifests/overlays/production/kustomization.yaml")).unwrap(),
    )
    .unwrap();
    let images = k["images"].as_array().expect("production kustomization has images:");
    assert!(
        images.iter().any(|i| i["name"] == "namespace-scheduler"
            && i["newName"]
                .as_str()
                .is_some_and(|n| n.ends_with(ECR_REPOSITORY_SUFFIX))),
        "production kustomization: images entry for namespace-scheduler -> ECR"
    );
}

#[test]
fn kyverno_component() {
    let docs = kustomize("manifests/tests/kyverno");
    let r = type_all(&docs, "manifests/tests/kyverno");
    assert_common(&r, "manifests/tests/kyverno");
    let policies: Vec<&Value> = r.custom.iter().filter(|v| kind_of(v) == "ClusterPolicy").collect();
    assert_eq!(policies.len(), 3, "three Kyverno ClusterPolicies");
    let p = policies
        .iter()
        .find(|p| name_of(p) == "namespace-scheduler-block-pods-in-inactive-namespaces")
        .expect("the block-pods ClusterPolicy");
    assert!(p["metadata"]["namespace"].is_null(), "ClusterPolicy is cluster-scoped");
    let rules = p["spec"]["rules"].as_array().expect("spec.rules");
    assert_eq!(rules.len(), 1);
    let rule = &rules[0];
    let m = &rule["match"]["any"][0]["resources"];
    assert_eq!(m["kinds"], serde_json::json!(["Pod"]));
    assert_eq!(m["operations"], serde_json::json!(["CREATE"]));
    assert_eq!(
        m["namespaceSelector"]["matchLabels"]["namespace-scheduler/status"], "inactive",
        "matches namespaces labelled namespace-scheduler/status=inactive"
    );
    let excluded: BTreeSet<&str> = rule["exclude"]["any"][0]["resources"]["namespaces"]
        .as_array()
        .expect("exclude.any[0].resources.namespaces")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let cm = config_map(&r, "namespace-scheduler-config");
    for ns in cm["PROTECTED_NAMESPACES"].split(',') {
        assert!(
            excluded.contains(ns),
            "Kyverno policy must exclude protected namespace {ns}"
        );
    }
    assert_eq!(rule["validate"]["failureAction"], "Enforce");
    assert!(rule["validate"]["deny"].is_object(), "validate.deny");
    assert!(rule["validate"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("ActivationRequest")));
}

#[test]
fn argocd_application_points_at_the_production_overlay() {
    let docs = read_yaml_file("argocd/application.yaml");
    assert_eq!(docs.len(), 1);
    let app = &docs[0];
    assert_eq!(app["apiVersion"], "argoproj.io/v1alpha1");
    assert_eq!(app["kind"], "Application");
    let path = app["spec"]["source"]["path"].as_str().expect("spec.source.path");
    assert_eq!(path, "manifests/overlays/production");
    assert!(Path::new(&repo_root().join(path).join("kustomization.yaml")).is_file());
    assert_eq!(app["spec"]["destination"]["namespace"], NAMESPACE);
    let auto = &app["spec"]["syncPolicy"]["automated"];
    assert_eq!(auto["prune"], true);
    assert_eq!(auto["selfHeal"], true);
}

#[test]
fn argocd_ignore_differences_cover_every_field_the_scheduler_writes() {
    use k8s_manifests::argocd::*;
    let want = fields_the_scheduler_writes();
    for file in ["README.md", "docs/deploying.md"] {
        let text = std::fs::read_to_string(repo_root().join(file)).unwrap();
        let got = ignore_differences_in(&text, file);
        let missing: Vec<_> = want.difference(&got).collect();
        let extra: Vec<_> = got.difference(&want).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{file}: ignoreDifferences missing {missing:?}, not written by the scheduler {extra:?}"
        );
    }
}

/// docs/fleet.md's ApplicationSet: its inline kustomize patches, applied to the production
/// overlay as Argo CD applies them, give each cluster its own `EKS_CLUSTER_NAME` and IRSA role,
/// and change nothing else.
#[test]
fn fleet_applicationset_gives_each_cluster_its_name_and_role() {
    use k8s_manifests::argocd::{fleet_applicationset_for, without_cluster_name_and_role};
    let (cluster, role) = (
        "eks-fleet-2",
        "arn:aws:iam::123456789012:role/namespace-scheduler-eks-fleet-2",
    );
    let (set, rendered) = fleet_applicationset_for(cluster, role);
    assert_eq!(set["apiVersion"], "argoproj.io/v1alpha1");
    let app = &set["spec"]["template"]["spec"];
    assert_eq!(app["source"]["path"], "manifests/overlays/production");
    assert_eq!(app["destination"]["namespace"], NAMESPACE);
    assert_eq!(app["destination"]["server"], "{{.server}}");

    let production = kustomize("manifests/overlays/production");
    assert_eq!(rendered.len(), production.len());
    let r = type_all(&rendered, "fleet ApplicationSet");
    assert_eq!(
        config_map(&r, "namespace-scheduler-config")["EKS_CLUSTER_NAME"],
        cluster
    );
    let sa = r
        .service_accounts
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some("namespace-scheduler"))
        .unwrap();
    assert_eq!(
        sa.metadata.annotations.as_ref().unwrap()["eks.amazonaws.com/role-arn"],
        role
    );
    // Nothing else differs from the production overlay.
    assert_eq!(
        without_cluster_name_and_role(&rendered),
        without_cluster_name_and_role(&production)
    );
}

#[test]
fn admin_job_examples() {
    let base = type_all(&kustomize("manifests/base"), "manifests/base");
    for (file, verb) in [
        ("manifests/examples/admin-up-job.yaml", "up"),
        ("manifests/examples/admin-down-job.yaml", "down"),
    ] {
        let text = std::fs::read_to_string(repo_root().join(file)).unwrap();
        assert!(
            text.contains("image: IMAGE"),
            "{file}: the documented sed needs `image: IMAGE`"
        );
        // as the documented sed does
        let text = text.replace(
            "image: IMAGE",
            "image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/namespace-scheduler:abc",
        );
        let docs = split_yaml(&text, file);
        assert_eq!(docs.len(), 1, "{file}: one Job");
        let job: Job = typed(&docs[0]);
        assert_eq!(job.metadata.namespace.as_deref(), Some(NAMESPACE), "{file}: namespace");
        assert!(
            job.metadata.generate_name.is_some(),
            "{file}: generateName, so it can be created repeatedly"
        );
        let spec = job.spec.as_ref().unwrap();
        assert!(
            spec.ttl_seconds_after_finished.is_some(),
            "{file}: ttlSecondsAfterFinished"
        );
        let args = assert_job_spec(file, spec, Some(&base));
        assert_eq!(args[0], verb, "{file}: subcommand");
        assert!(args.iter().any(|a| a == "--namespace"), "{file}: --namespace");
        if verb == "up" {
            assert!(args.iter().any(|a| a == "--cost-center"), "{file}: --cost-center");
        }
    }
}

#[test]
fn label_guard_component() {
    let docs = kustomize("manifests/components/label-guard");
    let r = type_all(&docs, "manifests/components/label-guard");
    assert_label_guard(&r, "manifests/components/label-guard");
}

#[test]
fn kyverno_guard_is_the_same_rule_as_the_admission_policy() {
    let kyverno = type_all(&kustomize("manifests/tests/kyverno"), "manifests/tests/kyverno");
    let vap = type_all(
        &kustomize("manifests/components/label-guard"),
        "manifests/components/label-guard",
    );
    k8s_manifests::label_guard::assert_kyverno_twin(&kyverno, &vap);
}
