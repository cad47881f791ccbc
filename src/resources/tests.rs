//! The quantity grammar, the effective request, and its decoding from listed objects.

use super::*;

const GI: u64 = 1 << 30;
const MI: u64 = 1 << 20;

#[test]
fn cpu_quantities_in_millicores() {
    for (q, want) in [
        ("250m", 250),
        ("1", 1000),
        ("0.5", 500),
        ("+2", 2000),
        ("1.", 1000),
        (".25", 250),
        ("1e3", 1_000_000),
        ("1E3", 1_000_000),
        ("1e-3", 1),
        ("2k", 2_000_000),
        ("100u", 1),  // 0.1 m, rounded up
        ("1n", 1),    // rounded up, as MilliValue does
        ("1001n", 1), // 0.001001 m
        ("0", 0),
        ("0m", 0),
        ("-0", 0),
        ("0.0001", 1), // 0.1 m
        ("1500m", 1500),
        ("1.5", 1500),
        ("000250m", 250),
    ] {
        assert_eq!(cpu_millicores(q).unwrap_or_else(|e| panic!("{q}: {e}")), want, "{q}");
    }
}

#[test]
fn memory_quantities_in_bytes() {
    for (q, want) in [
        ("128974848", 128_974_848),
        ("129e6", 129_000_000),
        ("129M", 129_000_000),
        ("123Mi", 123 * MI),
        ("0.5Gi", GI / 2),
        ("1.5Gi", 3 * GI / 2),
        ("2Gi", 2 * GI),
        ("1Ki", 1024),
        ("1Ti", 1 << 40),
        ("1Pi", 1 << 50),
        ("1Ei", 1 << 60),
        ("1E", 1_000_000_000_000_000_000),
        ("1G", 1_000_000_000),
        ("1k", 1000),
        ("500m", 1), // half a byte, rounded up
        ("1m", 1),
        ("0.1Ki", 103), // 102.4 → 103
    ] {
        assert_eq!(memory_bytes(q).unwrap_or_else(|e| panic!("{q}: {e}")), want, "{q}");
    }
}

#[test]
fn malformed_and_hostile_quantities_are_errors_not_panics() {
    for q in [
        "", "+", "-", ".", "m", "Gi", "1K", "1ki", "1GI", "1 Gi", " 1", "1Gi ", "1e", "1e+", "1e1.5", "1..5", "1.2.3",
        "0x10", "1Gib", "abc", "1m1", "--1", "1e-", "٣", "1\u{0}", "-1", "-250m", "-0.1",
    ] {
        assert!(cpu_millicores(q).is_err(), "cpu {q:?} should not parse");
        assert!(memory_bytes(q).is_err(), "memory {q:?} should not parse");
    }
}

#[test]
fn huge_and_tiny_values_saturate_or_round_up() {
    assert_eq!(memory_bytes("1e100000000000000000000000").unwrap(), u64::MAX);
    assert_eq!(memory_bytes("999999999Ei").unwrap(), u64::MAX);
    assert_eq!(cpu_millicores("18446744073709551616").unwrap(), u64::MAX);
    assert_eq!(memory_bytes("1e-100000000000000000000").unwrap(), 1);
    assert_eq!(memory_bytes("0e99999").unwrap(), 0);
    let long = format!("1.{}1Gi", "0".repeat(10_000));
    assert_eq!(
        memory_bytes(&long).unwrap(),
        GI + 1,
        "a digit far below a byte still rounds up"
    );
    let digits = "9".repeat(100_000);
    assert_eq!(cpu_millicores(&digits).unwrap(), u64::MAX);
    assert_eq!(memory_bytes(&format!("0.{digits}")).unwrap(), 1);
    // Exactly representable values with many digits stay exact.
    assert_eq!(memory_bytes("123456789012345678").unwrap(), 123_456_789_012_345_678);
}

fn pod(spec: serde_json::Value) -> PodRequest {
    let text = serde_json::json!({ "metadata": {"labels": {"app": "x"}}, "spec": spec }).to_string();
    let mut de = serde_json::Deserializer::from_str(&text);
    from_pod_template(&mut de).unwrap().unwrap()
}

fn container(cpu: Option<&str>, memory: Option<&str>) -> serde_json::Value {
    let mut requests = serde_json::Map::new();
    if let Some(c) = cpu {
        requests.insert("cpu".into(), c.into());
    }
    if let Some(m) = memory {
        requests.insert("memory".into(), m.into());
    }
    serde_json::json!({
        "name": "c", "image": "nginx", "env": [{"name": "A", "value": "b"}],
        "resources": {"requests": requests, "limits": {"cpu": "4", "memory": "8Gi"}},
    })
}

#[test]
fn effective_request_is_the_larger_of_the_sum_and_the_largest_init_container() {
    let p = pod(serde_json::json!({
        "containers": [container(Some("250m"), Some("256Mi")), container(Some("250m"), Some("256Mi"))],
        "initContainers": [container(Some("800m"), Some("64Mi")), container(Some("100m"), None)],
    }));
    assert_eq!((p.cpu_millicores, p.memory_bytes), (800, 512 * MI));
    assert!(
        p.is_complete(),
        "a one-shot init container without memory is not a gap: {p:?}"
    );
    assert_eq!(p.shortfall(), None);
    // Memory from the init container when it is the larger.
    let p = pod(serde_json::json!({
        "containers": [container(Some("1"), Some("1Gi"))],
        "initContainers": [container(Some("100m"), Some("3Gi"))],
    }));
    assert_eq!((p.cpu_millicores, p.memory_bytes), (1000, 3 * GI));
}

#[test]
fn sidecars_add_to_the_sum_and_to_later_init_containers() {
    let mut sidecar = container(Some("100m"), Some("100Mi"));
    sidecar["restartPolicy"] = "Always".into();
    let p = pod(serde_json::json!({
        "containers": [container(Some("200m"), Some("200Mi"))],
        // The sidecar starts first: the init container after it needs 500m + 100m.
        "initContainers": [sidecar, container(Some("500m"), Some("50Mi"))],
    }));
    assert_eq!((p.cpu_millicores, p.memory_bytes), (600, 300 * MI));
    assert_eq!(p.containers, 2);
}

#[test]
fn missing_requests_count_zero_and_are_flagged() {
    let p = pod(serde_json::json!({"containers": [{"name": "a", "image": "x"}]}));
    assert_eq!((p.cpu_millicores, p.memory_bytes), (0, 0));
    assert!(p.has_no_requests());
    assert_eq!(p.shortfall().as_deref(), Some("no requests"));

    let p = pod(serde_json::json!({
        "containers": [container(Some("250m"), None), container(None, None), container(Some("1"), Some("1Gi"))],
    }));
    assert_eq!((p.cpu_millicores, p.memory_bytes), (1250, GI));
    assert!(!p.is_complete() && !p.has_no_requests());
    assert_eq!(
        p.shortfall().as_deref(),
        Some("no cpu request on 1 of 3 containers, no memory request on 2 of 3 containers")
    );

    // Unreadable values are gaps too, never a failed parse of the whole object.
    let p = pod(serde_json::json!({
        "containers": [{"resources": {"requests": {"cpu": "lots", "memory": {"x": 1}}}},
                       {"resources": {"requests": {"cpu": 2, "memory": null}}},
                       {"resources": {"requests": null}}, {"resources": null}],
    }));
    assert_eq!((p.cpu_millicores, p.without_cpu, p.without_memory), (2000, 3, 4));

    // An empty template: nothing requested.
    let p = pod(serde_json::json!({}));
    assert!(p.has_no_requests() && !p.is_complete());
    assert_eq!(p.shortfall().as_deref(), Some("no requests"));
}

#[test]
fn listed_workloads_carry_the_request_of_their_kind_only() {
    use crate::scaling::inventory::Workload;
    use crate::scaling::kinds::Kind;
    use crate::scaling::objects::Slim;
    let deployment = serde_json::json!({
        "metadata": {"name": "api", "namespace": "dev-a", "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "api"}}, "template": {
            "metadata": {"labels": {"app": "api"}},
            "spec": {"containers": [container(Some("250m"), Some("256Mi")), container(Some("250m"), Some("256Mi"))],
                     "initContainers": [container(Some("800m"), None)],
                     "volumes": [{"name": "v", "emptyDir": {}}]}}},
        "status": {"replicas": 3},
    });
    let slim: Slim = serde_json::from_value(deployment.clone()).unwrap();
    let w = Workload::from_slim(Kind::DEPLOYMENT, slim);
    let p = w.per_replica.expect("a Deployment carries its request");
    assert_eq!(
        (p.cpu_millicores, p.memory_bytes, p.is_complete()),
        (800, 512 * MI, true)
    );

    let slim: Slim = serde_json::from_value(deployment).unwrap();
    assert_eq!(Workload::from_slim(Kind::STATEFUL_SET, slim).per_replica, Some(p));

    // A CronJob's pods are in jobTemplate and free nothing by this measure.
    let cron: Slim = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "nightly", "namespace": "dev-a"},
        "spec": {"suspend": false, "jobTemplate": {"spec": {"template": {"spec": {"containers": [container(Some("1"), Some("1Gi"))]}}}}},
    }))
    .unwrap();
    assert_eq!(Workload::from_slim(Kind::CRON_JOB, cron).per_replica, None);

    // A Deployment listed without a template (never from a real apiserver) requests nothing.
    let bare: Slim =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "x"}, "spec": {"replicas": 1}})).unwrap();
    let p = Workload::from_slim(Kind::DEPLOYMENT, bare).per_replica.unwrap();
    assert!(p.has_no_requests());
}
