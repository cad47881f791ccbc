//! Object builders, the `demo` sample cluster, and seed-file loading.

use serde_json::{json, Map, Value};

fn labels_map(labels: &[(&str, &str)]) -> Map<String, Value> {
    labels.iter().map(|(k, v)| (k.to_string(), json!(v))).collect()
}

/// A `v1/Namespace` object.
pub fn namespace(name: &str, labels: &[(&str, &str)]) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels_map(labels)}})
}

fn pod_template(name: &str) -> Value {
    json!({
        "metadata": {"labels": {"app": name}},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
    })
}

/// An `apps/v1/Deployment` with the given replica count.
pub fn deployment(ns: &str, name: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "template": pod_template(name)},
    })
}

/// An `apps/v1/StatefulSet` with the given replica count.
pub fn statefulset(ns: &str, name: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": pod_template(name),
        },
    })
}

/// An `argoproj.io/v1alpha1/Rollout` (canary strategy) with the given replica count.
pub fn rollout(ns: &str, name: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": pod_template(name),
            "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}]}},
        },
    })
}

/// An `autoscaling/v2/HorizontalPodAutoscaler` of Deployment `target`, scaling on an External
/// metric (what lets `minReplicas: 0` scale from 0), with `behavior` when given.
pub fn hpa(ns: &str, name: &str, target: &str, min_replicas: i64, behavior: Option<Value>) -> Value {
    let mut o = json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": min_replicas,
            "maxReplicas": 10,
            "metrics": [{"type": "External", "external": {
                "metric": {"name": "queue_depth"},
                "target": {"type": "AverageValue", "averageValue": "5"}}}],
        },
    });
    if let Some(b) = behavior {
        o["spec"]["behavior"] = b;
    }
    o
}

/// A `batch/v1/CronJob`.
pub fn cronjob(ns: &str, name: &str, suspend: bool) -> Value {
    json!({
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "schedule": "*/15 * * * *",
            "suspend": suspend,
            "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "OnFailure",
                "containers": [{"name": "job", "image": "busybox:1.36", "command": ["true"]}],
            }}}},
        },
    })
}

/// A `keda.sh/v1alpha1/ScaledObject` targeting a Deployment.
pub fn scaled_object(ns: &str, name: &str, target: &str) -> Value {
    json!({
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"scaleTargetRef": {"name": target}, "minReplicaCount": 1, "maxReplicaCount": 10,
                 "triggers": [{"type": "cpu", "metricMetadata": {"value": "60"}, "metricType": "Utilization"}]},
    })
}

const CC: &str = "namespace-scheduler/cost-center";

/// The sample cluster used by the README demo (`kube-standin --seed demo`).
pub fn demo() -> Vec<Value> {
    let mut out = vec![
        namespace("kube-system", &[]),
        namespace("default", &[]),
        namespace("task-scheduler", &[]),
        namespace("dev-payments", &[(CC, "IT-DEVELOPMENT")]),
        namespace("dev-orders", &[(CC, "IT-DEVELOPMENT")]),
        namespace("qa-checkout", &[(CC, "QA-TESTING")]),
        namespace("staging-web", &[(CC, "QA-TESTING")]),
        namespace("demo-sandbox", &[(CC, "DEMO-SANDBOX")]),
        namespace(
            "dev-legacy",
            &[(CC, "IT-DEVELOPMENT"), ("namespace-scheduler/exclude", "true")],
        ),
    ];
    out.push(deployment("kube-system", "coredns", 2));
    out.push(deployment("task-scheduler", "namespace-scheduler-ui", 1));
    // dev-payments: varied replicas, one already off, one excluded, one operator-owned.
    out.push(deployment("dev-payments", "payments-api", 3));
    out.push(deployment("dev-payments", "payments-worker", 7));
    out.push(deployment("dev-payments", "payments-reports", 0));
    let mut excluded = deployment("dev-payments", "payments-audit", 1);
    excluded["metadata"]["annotations"] = json!({"namespace-scheduler/exclude": "true"});
    out.push(excluded);
    out.push(statefulset("dev-payments", "payments-db", 1));
    out.push(cronjob("dev-payments", "payments-reconcile", false));
    // dev-orders
    out.push(deployment("dev-orders", "orders-api", 2));
    out.push(deployment("dev-orders", "orders-consumer", 1));
    let mut owned = deployment("dev-orders", "orders-cache", 1);
    owned["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "cache.example.com/v1",
        "kind": "RedisCluster",
        "name": "orders-cache",
        "uid": "6a1b8f3e-3c55-4a7e-9f52-0d2b1c9e7a10",
        "controller": true,
        "blockOwnerDeletion": true,
    }]);
    out.push(owned);
    out.push(statefulset("dev-orders", "orders-db", 2));
    out.push(cronjob("dev-orders", "orders-cleanup", true));
    // qa-checkout
    out.push(deployment("qa-checkout", "checkout-web", 2));
    out.push(deployment("qa-checkout", "checkout-api", 3));
    out.push(statefulset("qa-checkout", "checkout-redis", 1));
    out.push(cronjob("qa-checkout", "checkout-smoke", false));
    // staging-web
    out.push(deployment("staging-web", "web-frontend", 3));
    out.push(deployment("staging-web", "web-backend", 2));
    out.push(statefulset("staging-web", "web-search", 3));
    out.push(cronjob("staging-web", "web-sitemap", false));
    // demo-sandbox
    out.push(deployment("demo-sandbox", "sandbox-app", 1));
    out.push(statefulset("demo-sandbox", "sandbox-db", 1));
    out.push(cronjob("demo-sandbox", "sandbox-reset", false));
    // dev-legacy (namespace excluded)
    out.push(deployment("dev-legacy", "legacy-monolith", 2));
    out.push(cronjob("dev-legacy", "legacy-batch", false));
    // What the pods request, so the plan and the report show what a night frees: APIs and
    // web tiers 250m/256Mi, workers 500m/512Mi, databases and search 1 vCPU/2Gi. The
    // payments-api pod also runs an 800m migration init container (its effective request is
    // 800m); dev-orders' orders-consumer requests nothing (counted 0, and the plan says so).
    for o in &mut out {
        let name = o["metadata"]["name"].as_str().unwrap_or("").to_string();
        if !o["spec"]["template"].is_object() || name == "orders-consumer" {
            continue;
        }
        let (cpu, memory) = match name.as_str() {
            n if n.ends_with("-db") || n.ends_with("-search") || n.ends_with("-redis") => ("1", "2Gi"),
            n if n.ends_with("-worker") || n.ends_with("-consumer") || n.ends_with("-backend") => ("500m", "512Mi"),
            _ => ("250m", "256Mi"),
        };
        let spec = &mut o["spec"]["template"]["spec"];
        spec["containers"][0]["resources"] = json!({"requests": {"cpu": cpu, "memory": memory}});
        if name == "payments-api" {
            spec["initContainers"] = json!([{
                "name": "migrate", "image": "busybox:1.36",
                "resources": {"requests": {"cpu": "800m", "memory": "128Mi"}},
            }]);
        }
    }
    out
}

/// Parse a seed document: YAML (possibly multi-document) or JSON; each document may be one
/// object, an array of objects, or a `*List` with `items`.
pub fn parse_seed(text: &str) -> Result<Vec<Value>, String> {
    let mut docs = Vec::new();
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        docs.push(v);
    } else {
        let parsed: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| format!("invalid YAML: {e}"))?;
        docs.extend(parsed);
    }
    let mut out = Vec::new();
    for d in docs {
        match d {
            Value::Null => {}
            Value::Array(items) => out.extend(items),
            Value::Object(ref m) if m.get("items").is_some_and(Value::is_array) => {
                out.extend(d["items"].as_array().into_iter().flatten().cloned())
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

/// A `namespace-scheduler.io/v1alpha1` ActivationRequest asking for a window until `until`.
pub fn activation_request(namespace: &str, name: &str, until: &str, requested_by: &str) -> Value {
    json!({
        "apiVersion": "namespace-scheduler.io/v1alpha1",
        "kind": "ActivationRequest",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"until": until, "requestedBy": requested_by},
    })
}
