//! Helpers of the tests that apply the shipped manifests to a real apiserver (`manifests_real`,
//! `guard_real`): kubectl, installing the production overlay (one test at a time), registering
//! rendered objects for deletion with the test's `Cluster`, kubeconfigs for other identities,
//! writes that report a refusal.

use std::path::{Path, PathBuf};
use std::process::Command;

use kube::api::{Patch, PatchParams};
use kube::config::{AuthInfo, Kubeconfig};
use kube::core::Request;
use serde_json::{json, Value};

use crate::harness::*;
use crate::k8s_manifests::{kind_of, kustomize, name_of, NAMESPACE};

/// Marks the copy of `task-scheduler` these tests installed, so a real installation is never
/// touched (nor deleted) by them.
pub const FIXTURE_LABEL: &str = "nss-e2e/fixture";
pub const COST_CENTER: &str = "namespace-scheduler/cost-center";
pub const ACTIVATION_REQUESTS: &str = "/apis/namespace-scheduler.io/v1alpha1";

pub const SCHEDULER_USER: &str = "system:serviceaccount:task-scheduler:namespace-scheduler";

/// `kubectl --kubeconfig <kc> args…` with `stdin`: (success, stdout, stderr).
pub fn kubectl(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run kubectl");
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin.unwrap_or_default().as_bytes()).unwrap();
    drop(pipe);
    let out = child.wait_with_output().expect("kubectl output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A YAML stream of `docs`. Not a `List`: kubectl validates a List's items
/// client-side with the apiserver's OpenAPI v2, which in 1.28 wrongly requires
/// podFailurePolicy `onPodConditions` on every rule; each object alone is validated by the server.
pub fn as_stream(docs: &[Value]) -> String {
    docs.iter()
        .map(|d| format!("---\n{}", serde_saphyr::to_string(d).unwrap()))
        .collect()
}

/// Registers every object of `docs` with [`Cluster::delete_on_drop`] (before they are created).
pub fn delete_all_on_drop(c: &Cluster, docs: &[Value]) {
    for d in docs {
        let resource = format!("{}.{}", kind_of(d).to_lowercase(), group_of(d));
        c.delete_on_drop(
            resource.trim_end_matches('.'),
            d["metadata"]["namespace"].as_str(),
            name_of(d),
        );
    }
}

pub fn group_of(d: &Value) -> &str {
    d["apiVersion"]
        .as_str()
        .and_then(|a| a.rsplit_once('/'))
        .map(|(g, _)| g)
        .unwrap_or("")
}

/// Whether the `task-scheduler` these tests install may be used: absent, or ours (then wait for
/// an earlier run's copy to finish terminating). `false`: a real installation, left alone.
pub async fn task_scheduler_is_free(c: &Cluster) -> bool {
    for _ in 0..900 {
        let Some(ns) = c.get("Namespace", None, NAMESPACE).await else {
            return true;
        };
        if ns["metadata"]["labels"][FIXTURE_LABEL] != "true" {
            skip(&format!(
                "namespace {NAMESPACE} exists and was not installed by these tests: a real installation is never touched"
            ));
            return false;
        }
        // Left by an earlier run that did not clean up: ours to use again.
        if ns["metadata"]["deletionTimestamp"].is_null() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("namespace {NAMESPACE}, left by an earlier test, still exists 90 s later (no kube-controller-manager?)");
}

/// The production overlay, rendered, its `task-scheduler` namespace marked as the tests'.
pub fn production_overlay() -> Vec<Value> {
    let mut docs = kustomize("manifests/overlays/production");
    for d in docs.iter_mut().filter(|d| kind_of(d) == "Namespace") {
        d["metadata"]["labels"][FIXTURE_LABEL] = json!("true");
    }
    docs
}

/// Applies the production overlay for real, as shipped: the namespace, the ServiceAccount, the
/// RBAC, the CRD and the roles aggregated to edit/view, the guard's two admission policies and
/// their bindings, the ConfigMap, the CronJobs and the populate Job (no kubelet runs them).
/// Everything but the CRD is deleted when `c` drops (other tests have requests in the CRD).
/// None, with the test reported skipped, where a real installation exists. Hold
/// [`shipped_lock`] first.
pub async fn install_production(c: &Cluster) -> Option<Vec<Value>> {
    if !task_scheduler_is_free(c).await {
        return None;
    }
    let docs = production_overlay();
    let removable: Vec<Value> = docs
        .iter()
        .filter(|d| kind_of(d) != "CustomResourceDefinition")
        .cloned()
        .collect();
    delete_all_on_drop(c, &removable);
    let (ok, out, err) = kubectl(&c.kubeconfig, &["apply", "-f", "-"], Some(&as_stream(&docs)));
    assert!(ok, "apply the production overlay for real:\n{out}\n{err}");
    c.ensure_activation_request_crd().await;
    Some(docs)
}

/// A copy of this cluster's kubeconfig whose user is changed by `edit`.
pub fn kubeconfig_with(c: &Cluster, dir: &Path, file: &str, edit: impl FnOnce(&mut AuthInfo)) -> PathBuf {
    let mut kc = Kubeconfig::read_from(&c.kubeconfig).expect("read the kubeconfig");
    let current = kc.current_context.clone().expect("current-context");
    let user = kc
        .contexts
        .iter()
        .find(|n| n.name == current)
        .and_then(|n| n.context.as_ref())
        .map(|ctx| ctx.user.clone())
        .expect("the current context's user")
        .unwrap_or_default();
    let auth = kc
        .auth_infos
        .iter_mut()
        .find(|a| a.name == user)
        .and_then(|a| a.auth_info.as_mut())
        .expect("the current user");
    edit(auth);
    let path = dir.join(file);
    std::fs::write(&path, serde_saphyr::to_string(&kc).unwrap()).unwrap();
    path
}

pub async fn client_for(kubeconfig: &Path) -> kube::Client {
    let kc = Kubeconfig::read_from(kubeconfig).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("kubeconfig");
    kube::Client::try_from(cfg).unwrap()
}

/// A merge patch of a Namespace by `client`: Ok, or the refusal's (code, message).
pub async fn patch_ns(client: &kube::Client, ns: &str, patch: Value, dry_run: bool) -> Result<(), (u16, String)> {
    let params = PatchParams {
        dry_run,
        ..Default::default()
    };
    let req = Request::new("/api/v1/namespaces")
        .patch(ns, &params, &Patch::Merge(&patch))
        .unwrap();
    match client.request::<Value>(req).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) => Err((s.code, s.message)),
        Err(e) => panic!("patch namespace {ns}: {e}"),
    }
}

pub fn labels(pairs: &[(&str, &str)]) -> Value {
    json!({"metadata": {"labels": pairs.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>()}})
}

pub fn annotations(pairs: &[(&str, &str)]) -> Value {
    json!({"metadata": {"annotations": pairs.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>()}})
}

/// Runs the binary with `env` (another identity): it must exit 0 and have nothing refused.
pub async fn run_as(c: &Cluster, env: &[(&str, &str)], args: &[&str]) {
    let (code, out, err) = c.run_with(args, env).await;
    assert_eq!(code, 0, "{args:?} as {env:?}:\n{out}\n{err}");
    assert!(
        !err.to_lowercase().contains("forbidden"),
        "{args:?}: a request was refused:\n{err}"
    );
}

/// A client of this cluster acting as `user` in `groups` (impersonation, as `kubectl --as`).
pub async fn impersonating(c: &Cluster, user: &str, groups: &[&str]) -> kube::Client {
    let kc = Kubeconfig::read_from(&c.kubeconfig).unwrap();
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("kubeconfig");
    cfg.auth_info.impersonate = Some(user.into());
    cfg.auth_info.impersonate_groups = Some(groups.iter().map(|g| g.to_string()).collect());
    kube::Client::try_from(cfg).unwrap()
}

/// Held by every test that installs cluster-wide objects under their shipped names (the
/// production overlay, the guard): they run one at a time. Take it before `Cluster::start`, so
/// it is released only after the `Cluster` has deleted what the test installed.
pub async fn shipped_lock() -> tokio::sync::MutexGuard<'static, ()> {
    static SHIPPED: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SHIPPED.lock().await
}

/// A kubeconfig for this cluster whose user is the scheduler's ServiceAccount, with a token of
/// its own (`kubectl create token`): real authentication and authorization.
pub fn service_account_kubeconfig(c: &Cluster, dir: &Path) -> PathBuf {
    let (ok, token, err) = kubectl(
        &c.kubeconfig,
        &[
            "create",
            "token",
            crate::k8s_manifests::SERVICE_ACCOUNT,
            "-n",
            crate::k8s_manifests::NAMESPACE,
            "--duration=1h",
        ],
        None,
    );
    assert!(ok, "kubectl create token: {err}");
    kubeconfig_with(c, dir, "sa.kubeconfig", |a| {
        *a = serde_json::from_value(json!({"token": token.trim()})).unwrap();
    })
}

/// Retries `attempt` (bounded, 30 s) until it says the cluster is ready: a policy or an
/// aggregated role takes effect a moment after it is written.
pub async fn eventually<F, Fut>(what: &str, mut attempt: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if attempt().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{what}: not within 30 s");
}

/// Creates `body` with `client`: Ok, or the refusal's (code, message).
pub async fn create_as(client: &kube::Client, path: &str, body: &Value, dry_run: bool) -> Result<Value, (u16, String)> {
    let params = kube::api::PostParams {
        dry_run,
        ..Default::default()
    };
    let req = Request::new(path)
        .create(&params, serde_json::to_vec(body).unwrap())
        .unwrap();
    match client.request::<Value>(req).await {
        Ok(v) => Ok(v),
        Err(kube::Error::Api(s)) => Err((s.code, s.message)),
        Err(e) => panic!("create in {path}: {e}"),
    }
}
