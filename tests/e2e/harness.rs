//! The cluster behind the e2e tests: the in-process API stand-in by default, or the real cluster
//! of `E2E_KUBECONFIG`. Everything is seeded and read through the Kubernetes API with the kube
//! client, so the tests are the same in both modes; only fault injection and request counting
//! need the stand-in: such a test calls `standin_only(why)`, which on a real cluster prints one
//! `SKIP` line naming the test and the reason (and appends it to `$E2E_SKIP_LOG`, which
//! scripts/test.sh counts), instead of passing silently. `real_only(why)` is the converse.
//!
//! Isolation: every test creates namespaces named `nss-e2e-<random>-…`, labels them
//! `nss-e2e/run=<random>`, and runs the scheduler with `NAMESPACE_SELECTOR` set to that label
//! and its own namespace (holding its Lease) `nss-e2e-<random>-sched`, so nothing else in a
//! shared cluster is ever managed. On a real cluster the namespaces a test created are deleted
//! when its `Cluster` is dropped, so a test that fails (panics) cleans up too.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use kube::api::{GetParams, Patch, PatchParams, PostParams};
use kube::core::Request;
use serde_json::{json, Value};
use standin::{Options, Standin};

use crate::common::{self, DynamoHandle};

pub const OFF_HOURS: &str = "2026-11-25T20:00:00-05:00";
pub const LATER_OFF_HOURS: &str = "2026-11-25T21:00:00-05:00";
pub const NEXT_NIGHT: &str = "2026-11-26T01:00:00-05:00";
pub const BUSINESS: &str = "2026-11-26T10:00:00-05:00";
pub const RUN_LABEL: &str = "nss-e2e/run";

pub struct Cluster {
    pub standin: Option<Standin>,
    pub client: kube::Client,
    pub kubeconfig: PathBuf,
    pub id: String,
    pub own_ns: String,
    pub dynamo: DynamoHandle,
    pub audit_table: String,
    pub permissions_table: String,
    created: std::sync::Mutex<Vec<String>>,
    /// Other objects a test made (`resource`, namespace, `name`), deleted before the namespaces.
    created_objects: std::sync::Mutex<Vec<(String, Option<String>, String)>>,
    _dir: tempfile::TempDir,
}

/// Collection path for a kind.
fn path(kind: &str, ns: Option<&str>) -> String {
    let (prefix, plural) = match kind {
        "Namespace" => return "/api/v1/namespaces".into(),
        "Deployment" => ("/apis/apps/v1", "deployments"),
        "StatefulSet" => ("/apis/apps/v1", "statefulsets"),
        "CronJob" => ("/apis/batch/v1", "cronjobs"),
        "ScaledObject" => ("/apis/keda.sh/v1alpha1", "scaledobjects"),
        "Rollout" => ("/apis/argoproj.io/v1alpha1", "rollouts"),
        "HorizontalPodAutoscaler" => ("/apis/autoscaling/v2", "horizontalpodautoscalers"),
        "Lease" => ("/apis/coordination.k8s.io/v1", "leases"),
        "ActivationRequest" => ("/apis/namespace-scheduler.io/v1alpha1", "activationrequests"),
        other => panic!("unknown kind {other}"),
    };
    format!("{prefix}/namespaces/{}/{plural}", ns.expect("namespaced kind"))
}

impl Cluster {
    pub async fn start() -> Cluster {
        Self::start_with(Options {
            enable_keda: true,
            enable_activation_requests: true,
            enable_rollouts: true,
            ..Options::default()
        })
        .await
    }

    pub async fn start_with(opts: Options) -> Cluster {
        match std::env::var("E2E_KUBECONFIG") {
            Ok(p) if !p.trim().is_empty() => Self::start_on(PathBuf::from(p)).await,
            _ => {
                let dir = tempfile::tempdir().expect("tempdir");
                let s = Standin::start_in_thread(opts).expect("start the stand-in");
                let kc = dir.path().join("kubeconfig");
                s.write_kubeconfig(&kc).expect("write kubeconfig");
                let client = kube::Client::try_from(kube::Config::new(s.url().parse().unwrap())).unwrap();
                Self::with(Some(s), kc, client, dir).await
            }
        }
    }

    /// On the real cluster of `kubeconfig` (E2E_KUBECONFIG's, or a control plane of the test's
    /// own: `common::control_plane`).
    pub async fn start_on(kubeconfig: PathBuf) -> Cluster {
        let kc = kube::config::Kubeconfig::read_from(&kubeconfig).expect("read the kubeconfig");
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("kubeconfig config");
        let client = kube::Client::try_from(cfg).expect("client");
        Self::with(None, kubeconfig, client, tempfile::tempdir().expect("tempdir")).await
    }

    async fn with(
        standin: Option<Standin>,
        kubeconfig: PathBuf,
        client: kube::Client,
        dir: tempfile::TempDir,
    ) -> Cluster {
        let id = format!("{:06x}", fastrand::u32(..0x100_0000));
        let dynamo = common::dynamo().await;
        let (audit_table, permissions_table) = common::unique_tables(&dynamo).await;
        let c = Cluster {
            standin,
            client,
            kubeconfig,
            own_ns: format!("nss-e2e-{id}-sched"),
            id,
            dynamo,
            audit_table,
            permissions_table,
            created: Default::default(),
            created_objects: Default::default(),
            _dir: dir,
        };
        c.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": c.own_ns}}))
            .await;
        c.created.lock().unwrap().push(c.own_ns.clone());
        c
    }

    pub fn real(&self) -> bool {
        self.standin.is_none()
    }

    pub fn standin(&self) -> Option<&Standin> {
        self.standin.as_ref()
    }

    /// The stand-in, for a test that needs it (fault injection, request counting); on a real
    /// cluster the test is reported skipped with `why` and `None` is returned.
    pub fn standin_only(&self, why: &str) -> Option<&Standin> {
        if self.standin.is_none() {
            skip(&format!("needs the API stand-in: {why}"));
        }
        self.standin.as_ref()
    }

    /// Whether this is a real cluster, for a test that needs one (admission, RBAC with real
    /// tokens); on the stand-in the test is reported skipped with `why`.
    pub fn real_only(&self, why: &str) -> bool {
        if !self.real() {
            skip(&format!("needs a real apiserver: {why}"));
        }
        self.real()
    }

    pub async fn create(&self, obj: Value) -> Value {
        let kind = obj["kind"].as_str().unwrap().to_string();
        let ns = obj["metadata"]["namespace"].as_str().map(str::to_string);
        let req = Request::new(path(&kind, ns.as_deref()))
            .create(&PostParams::default(), serde_json::to_vec(&obj).unwrap())
            .unwrap();
        self.client
            .request::<Value>(req)
            .await
            .unwrap_or_else(|e| panic!("create {kind}: {e}"))
    }

    /// On a real cluster without KEDA, installs a minimal `scaledobjects.keda.sh` CRD (the
    /// scheduler only reads metadata and annotations) and waits until it is served; the
    /// stand-in serves ScaledObjects itself. The CRD is left in place for later tests.
    pub async fn ensure_keda_crd(&self) {
        if !self.real() {
            return;
        }
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "scaledobjects.keda.sh"},
            "spec": {"group": "keda.sh", "scope": "Namespaced",
                "names": {"kind": "ScaledObject", "listKind": "ScaledObjectList", "plural": "scaledobjects", "singular": "scaledobject"},
                "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
        });
        self.install_crd(&crd, "/apis/keda.sh/v1alpha1/scaledobjects").await;
    }

    /// Creates `crd` (already there is fine) and waits until `probe` (its collection) lists.
    pub async fn install_crd(&self, crd: &Value, probe: &str) {
        let name = crd["metadata"]["name"].as_str().unwrap_or("?");
        let req = Request::new("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
            .create(&PostParams::default(), serde_json::to_vec(crd).unwrap())
            .unwrap();
        match self.client.request::<Value>(req).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => panic!("create the CRD {name}: {e}"),
        }
        for _ in 0..300 {
            let list = Request::new(probe).list(&Default::default()).unwrap();
            if self.client.request::<Value>(list).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the CRD {name} was not served within 30 s");
    }

    /// On a real cluster, installs the shipped ActivationRequest CRD (manifests/base) once per
    /// test binary and waits until it is served; the stand-in serves it itself. It is left in
    /// place: other tests running at the same time have requests in their namespaces.
    pub async fn ensure_activation_request_crd(&self) {
        static INSTALLED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
        if !self.real() {
            return;
        }
        INSTALLED
            .get_or_init(|| async {
                let crd: Vec<Value> = crate::k8s_manifests::kustomize("manifests/base")
                    .into_iter()
                    .filter(|d| d["kind"] == "CustomResourceDefinition")
                    .collect();
                assert_eq!(crd.len(), 1, "manifests/base ships the ActivationRequest CRD");
                let text = serde_json::to_string(&crd[0]).unwrap();
                let mut apply = std::process::Command::new("kubectl")
                    .arg("--kubeconfig")
                    .arg(&self.kubeconfig)
                    .args(["apply", "-f", "-"])
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .expect("run kubectl");
                use std::io::Write;
                apply.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
                assert!(
                    apply.wait().unwrap().success(),
                    "kubectl apply the ActivationRequest CRD"
                );
                for _ in 0..300 {
                    let probe = Request::new("/apis/namespace-scheduler.io/v1alpha1/activationrequests")
                        .list(&Default::default())
                        .unwrap();
                    if self.client.request::<Value>(probe).await.is_ok() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                panic!("the ActivationRequest CRD was not served within 30 s");
            })
            .await;
    }

    /// The user name the test client authenticates as (`kubectl auth whoami`): what a request
    /// created by the tests must name as its requester. The stand-in does not authenticate.
    pub async fn whoami(&self) -> String {
        if !self.real() {
            return "e2e-tester".into();
        }
        let review = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"});
        let req = Request::new("/apis/authentication.k8s.io/v1/selfsubjectreviews")
            .create(&PostParams::default(), serde_json::to_vec(&review).unwrap())
            .unwrap();
        let out: Value = self.client.request(req).await.expect("SelfSubjectReview");
        out["status"]["userInfo"]["username"]
            .as_str()
            .expect("a user name")
            .to_string()
    }

    /// An ActivationRequest `name` in `ns` for a window until `until`, by the test's own user.
    pub async fn ask(&self, ns: &str, name: &str, until: &str) -> Value {
        self.ensure_activation_request_crd().await;
        let by = self.whoami().await;
        self.create(standin::seed::activation_request(ns, name, until, &by))
            .await
    }

    /// An ActivationRequest's `status` (null when unanswered).
    pub async fn answer(&self, ns: &str, name: &str) -> Value {
        self.get("ActivationRequest", Some(ns), name)
            .await
            .map(|r| r["status"].clone())
            .unwrap_or(Value::Null)
    }

    /// `phase: message` of an ActivationRequest's answer (`-` for none).
    pub async fn phase(&self, ns: &str, name: &str) -> String {
        let st = self.answer(ns, name).await;
        format!(
            "{}: {}",
            st["phase"].as_str().unwrap_or("-"),
            st["message"].as_str().unwrap_or("-")
        )
    }

    /// Deletes an object, as another actor would; waits until it is gone.
    pub async fn delete(&self, kind: &str, ns: Option<&str>, name: &str) {
        let req = Request::new(path(kind, ns)).delete(name, &Default::default()).unwrap();
        match self.client.request::<Value>(req).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => panic!("delete {kind} {name}: {e}"),
        }
        for _ in 0..300 {
            if self.get(kind, ns, name).await.is_none() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{kind} {name} still exists 30 s after its deletion");
    }

    /// A managed namespace `nss-e2e-<id>-<short>` (labelled for this test's selector).
    pub async fn namespace(&self, short: &str, labels: &[(&str, &str)]) -> String {
        let name = format!("nss-e2e-{}-{short}", self.id);
        let mut l: BTreeMap<&str, &str> = labels.iter().copied().collect();
        l.insert(RUN_LABEL, &self.id);
        self.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": l}}))
            .await;
        self.created.lock().unwrap().push(name.clone());
        name
    }

    pub async fn deployment(&self, ns: &str, name: &str, replicas: i64) {
        self.create(standin::seed::deployment(ns, name, replicas)).await;
    }

    pub async fn statefulset(&self, ns: &str, name: &str, replicas: i64) {
        self.create(standin::seed::statefulset(ns, name, replicas)).await;
    }

    pub async fn cronjob(&self, ns: &str, name: &str, suspend: bool) {
        self.create(standin::seed::cronjob(ns, name, suspend)).await;
    }

    pub async fn get(&self, kind: &str, ns: Option<&str>, name: &str) -> Option<Value> {
        let req = Request::new(path(kind, ns)).get(name, &GetParams::default()).unwrap();
        match self.client.request::<Value>(req).await {
            Ok(v) => Some(v),
            Err(kube::Error::Api(s)) if s.code == 404 => None,
            Err(e) => panic!("get {kind} {name}: {e}"),
        }
    }

    /// A merge patch, as another actor (a person with kubectl) would make it.
    pub async fn patch(&self, kind: &str, ns: Option<&str>, name: &str, patch: Value) {
        let req = Request::new(path(kind, ns))
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .unwrap();
        self.client
            .request::<Value>(req)
            .await
            .unwrap_or_else(|e| panic!("patch {kind} {name}: {e}"));
    }

    pub async fn replicas(&self, kind: &str, ns: &str, name: &str) -> i64 {
        self.get(kind, Some(ns), name).await.expect("exists")["spec"]["replicas"]
            .as_i64()
            .unwrap_or(1)
    }

    pub async fn suspended(&self, ns: &str, name: &str) -> bool {
        self.get("CronJob", Some(ns), name).await.expect("exists")["spec"]["suspend"]
            .as_bool()
            .unwrap_or(false)
    }

    pub async fn annotation(&self, kind: &str, ns: Option<&str>, name: &str, key: &str) -> Option<String> {
        self.get(kind, ns, name).await.expect("exists")["metadata"]["annotations"][key]
            .as_str()
            .map(str::to_string)
    }

    pub async fn label(&self, ns: &str, key: &str) -> Option<String> {
        self.get("Namespace", None, ns).await.expect("exists")["metadata"]["labels"][key]
            .as_str()
            .map(str::to_string)
    }

    /// Everything the scheduler may change in a namespace, as comparable text: each workload's
    /// value and `namespace-scheduler/*` annotations, and the namespace's own labels/annotations.
    pub async fn snapshot(&self, ns: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let ours = |meta: &Value| -> String {
            let mut v: Vec<String> = ["labels", "annotations"]
                .iter()
                .flat_map(|f| meta[*f].as_object().cloned().unwrap_or_default())
                .filter(|(k, _)| k.starts_with("namespace-scheduler/") || k.starts_with("autoscaling.keda.sh/"))
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            v.sort();
            v.join(",")
        };
        let nsobj = self.get("Namespace", None, ns).await.expect("namespace");
        out.insert("Namespace".into(), ours(&nsobj["metadata"]));
        for kind in ["Deployment", "StatefulSet", "CronJob"] {
            let req = Request::new(path(kind, Some(ns))).list(&Default::default()).unwrap();
            let list: Value = self.client.request(req).await.expect("list");
            for o in list["items"].as_array().cloned().unwrap_or_default() {
                let value = if kind == "CronJob" {
                    o["spec"]["suspend"].to_string()
                } else {
                    o["spec"]["replicas"].to_string()
                };
                out.insert(
                    format!("{kind}/{}", o["metadata"]["name"].as_str().unwrap()),
                    format!("{value} {}", ours(&o["metadata"])),
                );
            }
        }
        out
    }

    /// The scheduler binary with this cluster, these tables and short retry delays.
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let std_cmd = {
            let mut c = common::scheduler(&self.dynamo, &self.audit_table, &self.permissions_table);
            c.env("KUBECONFIG", &self.kubeconfig)
                .env("POD_NAMESPACE", &self.own_ns)
                .env("NAMESPACE_SELECTOR", format!("{RUN_LABEL}={}", self.id))
                .env("LOG_FORMAT", "text")
                .env("EKS_CLUSTER_NAME", "e2e")
                .env("NS_SCHEDULER_RETRY_BASE_MS", "5")
                .env("NS_SCHEDULER_RETRY_MAX_MS", "50")
                .env("NS_SCHEDULER_REQUEST_TIMEOUT_MS", "2000")
                .args(args);
            c
        };
        let mut cmd = tokio::process::Command::from(std_cmd);
        cmd.kill_on_drop(true);
        cmd
    }

    /// Runs the scheduler to completion: (exit code, stdout, stderr).
    pub async fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        let mut cmd = self.command(args);
        cmd.envs(env.iter().copied());
        let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
            .await
            .expect("scheduler finished within 120 s")
            .expect("spawn the scheduler");
        let r = (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        if std::env::var("E2E_VERBOSE").is_ok() {
            eprintln!("$ {args:?} -> {}\n{}\n{}", r.0, r.1, r.2);
        }
        r
    }

    pub async fn run(&self, args: &[&str]) -> (i32, String, String) {
        self.run_with(args, &[]).await
    }

    /// `run --at T --output json`, returning the exit code and the summary.
    pub async fn run_json(&self, at: &str, env: &[(&str, &str)]) -> (i32, Value, String) {
        let (code, out, err) = self.run_with(&["--output", "json", "run", "--at", at], env).await;
        let summary = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("summary JSON ({e}): {out}\n{err}"));
        (code, summary, err)
    }

    pub async fn populate(&self) {
        let (code, out, err) = self.run(&["populate"]).await;
        assert_eq!(code, 0, "populate: {out}\n{err}");
    }

    /// Seeds the permissions table with `items` (a JSON list, as `populate --file` reads it).
    pub async fn populate_with(&self, items: Value) {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), items.to_string()).unwrap();
        let (code, out, err) = self.run(&["populate", "--file", file.path().to_str().unwrap()]).await;
        assert_eq!(code, 0, "populate: {out}\n{err}");
    }

    pub async fn audit(&self) -> Vec<namespace_scheduler::audit::AuditRecord> {
        common::audit_records(&self.dynamo, &self.audit_table).await
    }

    /// The RBAC tests' world: a namespace of DEVOPS-INFRA with every kind the scheduler writes
    /// (a Deployment of 3 with a scale-to-zero HPA, a StatefulSet of 1, a running CronJob, a
    /// ScaledObject, a Rollout of 2) and a second
    /// one, `asker`, with a Deployment of 2 that will ask for off-hours time. Returns both names.
    pub async fn every_kind_and_an_asker(&self, name: &str) -> (String, String) {
        let cc = [("namespace-scheduler/cost-center", "DEVOPS-INFRA")];
        let ns = self.namespace(name, &cc).await;
        self.deployment(&ns, "api", 3).await;
        self.statefulset(&ns, "db", 1).await;
        self.cronjob(&ns, "job", false).await;
        self.create(standin::seed::scaled_object(&ns, "api", "api")).await;
        crate::kinds::ensure_rollout_crd(self).await;
        self.create(standin::seed::rollout(&ns, "canary", 2)).await;
        self.create(standin::seed::hpa(&ns, "api", "api", 0, None)).await;
        let asker = self.namespace(&format!("{name}-ask"), &cc).await;
        self.deployment(&asker, "web", 2).await;
        (ns, asker)
    }

    /// The Events of `ns` with this `reason`.
    pub async fn events(&self, ns: &str, reason: &str) -> Vec<Value> {
        let req = Request::new(format!("/api/v1/namespaces/{ns}/events"))
            .list(&Default::default())
            .unwrap();
        let list: Value = self.client.request(req).await.expect("list events");
        list["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e["reason"] == reason)
            .collect()
    }

    /// Makes the scheduler's Lease look abandoned (its holder stopped renewing long ago).
    pub async fn expire_lease(&self) {
        if self
            .get("Lease", Some(&self.own_ns), "namespace-scheduler")
            .await
            .is_some()
        {
            self.patch(
                "Lease",
                Some(&self.own_ns),
                "namespace-scheduler",
                json!({"spec": {"renewTime": "2020-01-01T00:00:00.000000Z", "acquireTime": "2020-01-01T00:00:00.000000Z"}}),
            )
            .await;
        }
    }

    /// Deletes `resource`/`name` (in `namespace`, for a namespaced kind; e.g.
    /// `validatingadmissionpolicies.admissionregistration.k8s.io`) when this `Cluster` is
    /// dropped, in reverse order of registration and before the test's namespaces, on success
    /// and on panic alike. Register before creating, so a failure half-way still removes it.
    pub fn delete_on_drop(&self, resource: &str, namespace: Option<&str>, name: &str) {
        self.created_objects.lock().unwrap_or_else(|e| e.into_inner()).push((
            resource.to_string(),
            namespace.map(str::to_string),
            name.to_string(),
        ));
    }

    /// Deletes the namespaces this test created (a real cluster keeps no trace of the test).
    /// Dropping the `Cluster` does the same; this only makes the end of a test explicit.
    pub async fn cleanup(self) {
        drop(self);
    }
}

impl Drop for Cluster {
    /// Runs on success and on panic alike. `kubectl` rather than the async client: a `Drop`
    /// cannot await, and the client belongs to the test's runtime.
    fn drop(&mut self) {
        let objects = std::mem::take(&mut *self.created_objects.lock().unwrap_or_else(|e| e.into_inner()));
        let created = std::mem::take(&mut *self.created.lock().unwrap_or_else(|e| e.into_inner()));
        if !self.real() {
            return;
        }
        for (resource, namespace, name) in objects.iter().rev() {
            let mut delete = std::process::Command::new("kubectl");
            delete.arg("--kubeconfig").arg(&self.kubeconfig).args([
                "delete",
                resource,
                name,
                "--wait=false",
                "--ignore-not-found",
            ]);
            if let Some(ns) = namespace {
                delete.args(["-n", ns]);
            }
            match delete.output() {
                Ok(o) if o.status.success() => {}
                Ok(o) => eprintln!(
                    "cleanup of {resource}/{name} failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                ),
                Err(e) => eprintln!("cleanup of {resource}/{name}: cannot run kubectl: {e}"),
            }
        }
        if created.is_empty() {
            return;
        }
        let deleted = std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["delete", "namespace", "--wait=false", "--ignore-not-found"])
            .args(&created)
            .output();
        match deleted {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!("cleanup of {created:?} failed: {}", String::from_utf8_lossy(&o.stderr)),
            Err(e) => eprintln!("cleanup of {created:?}: cannot run kubectl: {e}"),
        }
    }
}

/// The summary row of `ns`, if the run printed one.
pub fn find_row<'a>(summary: &'a Value, ns: &str) -> Option<&'a Value> {
    summary["namespaces"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["namespace"] == ns))
}

/// The summary row of `ns` (the test fails without one).
pub fn row<'a>(summary: &'a Value, ns: &str) -> &'a Value {
    find_row(summary, ns).unwrap_or_else(|| panic!("no row for {ns} in {summary}"))
}

/// Reports the current test as skipped: one line on stderr and, when `E2E_SKIP_LOG` names a
/// file, one line appended to it (scripts/test.sh prints and counts them).
pub fn skip(why: &str) {
    let test = std::thread::current().name().unwrap_or("unknown test").to_string();
    let line = format!("SKIP {test}: {why}");
    eprintln!("{line}");
    if let Some(path) = std::env::var_os("E2E_SKIP_LOG") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = writeln!(f, "{line}");
        }
    }
}
