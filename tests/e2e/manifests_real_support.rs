//! Helpers of `manifests_real`: kubectl, registering rendered objects for deletion with the
//! test's `Cluster`, kubeconfigs for other identities, the admission-policy API version,
//! namespace patches that report a refusal.

use std::path::{Path, PathBuf};
use std::process::Command;

use kube::api::{Patch, PatchParams};
use kube::config::{AuthInfo, Kubeconfig};
use kube::core::Request;
use serde_json::{json, Value};

use crate::harness::*;
use crate::k8s_manifests::{kind_of, name_of};

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
        .map(|d| format!("---\n{}", serde_yaml::to_string(d).unwrap()))
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

/// The version that serves ValidatingAdmissionPolicy here: `v1` (1.30+) or `v1beta1` (1.28,
/// 1.29, with the API enabled as scripts/control-plane.sh does); `None` without it.
pub async fn admission_policy_version(c: &Cluster) -> Option<&'static str> {
    for v in ["v1", "v1beta1"] {
        // the group-version's discovery document (a GET of the path, as a "list" builds it)
        let req = Request::new(format!("/apis/admissionregistration.k8s.io/{v}"))
            .list(&Default::default())
            .unwrap();
        if let Ok(list) = c.client.request::<Value>(req).await {
            let served = list["resources"].as_array().into_iter().flatten();
            if served.clone().any(|r| r["name"] == "validatingadmissionpolicies") {
                return Some(v);
            }
        }
    }
    None
}

/// The shipped `admissionregistration.k8s.io/v1` objects as this apiserver serves them.
pub fn convert_admission(docs: &mut [Value], version: &str) {
    for d in docs.iter_mut() {
        if d["apiVersion"] == "admissionregistration.k8s.io/v1" {
            d["apiVersion"] = json!(format!("admissionregistration.k8s.io/{version}"));
        }
    }
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
    std::fs::write(&path, serde_yaml::to_string(&kc).unwrap()).unwrap();
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

pub fn rules_of(docs: &[Value], kind: &str, name: &str) -> Value {
    docs.iter()
        .find(|d| kind_of(d) == kind && name_of(d) == name)
        .unwrap_or_else(|| panic!("{kind} {name} not rendered"))["rules"]
        .clone()
}
