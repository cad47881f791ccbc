//! # standin — a stateful stand-in for the Kubernetes API server
//!
//! `standin` speaks the real Kubernetes REST protocol (JSON over plain HTTP/1.1) well enough
//! that the `kube` client and `kubectl` work against it unchanged. It serves namespaces,
//! events, Pods (plain objects: nothing creates them), Deployments and StatefulSets (with the
//! `scale` subresource), CronJobs, Leases,
//! `events.k8s.io/v1` Events and, when enabled, KEDA ScaledObjects and namespace-scheduler's
//! ActivationRequests (with the `status` subresource).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use standin::{FaultAction, FaultRule, Standin};
//!
//! let server = Standin::start().await;
//! server.add_namespace("dev-a", &[("namespace-scheduler/cost-center", "IT")]);
//! server.add_deployment("dev-a", "api", 3);
//! // One 503 on the next patch of a deployment:
//! server.add_fault(FaultRule::new(FaultAction::status(503)).verb("patch").resource("deployments").once());
//!
//! let config = kube::Config::new(server.url().parse()?);
//! let client = kube::Client::try_from(config)?;
//! # let _ = client;
//! assert_eq!(server.count_verb("patch"), 0);
//! # Ok(()) }
//! ```
//!
//! Semantics worth knowing:
//! * one global resourceVersion, bumped by every write; `metadata.generation` bumps when `spec`
//!   changes; Deployment/StatefulSet status converges instantly in the same write;
//! * PUT with a stale `metadata.resourceVersion` → 409; PATCH whose result carries a
//!   `metadata.resourceVersion` different from the stored one → 409 (optimistic concurrency);
//! * PUT without a resourceVersion is accepted for built-in kinds (as the apiserver does) unless
//!   [`Options::strict_updates`] is set; it is always rejected (422) for custom resources;
//! * list pagination continues strictly after the last returned key, so objects that exist
//!   throughout are never skipped or duplicated;
//! * a list at `resourceVersion=0` is answered whole (`limit` ignored), as the apiserver's watch
//!   cache does, unless [`Options::watch_cache`] is off; list options are validated as the
//!   apiserver does (422 for a `resourceVersionMatch` it cannot honour, 400 for a
//!   resourceVersion beside a continue token);
//! * [`Standin::compact`] (or the `compact` fault action) compacts "etcd": a continue token
//!   from before is answered 410 `Expired` with the apiserver's message and a continue token
//!   in the Status;
//! * strategic merge patch is a merge patch that also merges lists of objects by `name`; it is
//!   rejected with 415 for custom resources (ScaledObjects), as by the apiserver;
//! * server-side apply (`application/apply-patch+yaml`) is approximated as a merge patch that
//!   creates missing objects (no field ownership, no managedFields);
//! * the `status` subresource of ActivationRequests is served as for a CRD with
//!   `subresources: {status: {}}`: writes to the object ignore `status`, writes to `/status`
//!   change only `status` and never bump `metadata.generation`; no other kind has it (404);
//!   custom resources are not validated against a schema;
//! * `watch` and `deletecollection` are not served (405);
//! * objects inserted with [`Standin::insert`] skip API checks (their namespace need not
//!   exist); API creates into a missing namespace get 404 like the apiserver;
//! * the `kube` 5 client retries 429/503/504 by itself unless `Config::default_retry` is
//!   false — set it to false to observe one-shot status faults in a test.
//!
//! ## Admin HTTP surface (not recorded, no latency, no faults)
//!
//! | request | effect |
//! |---|---|
//! | `GET /_standin/requests` / `DELETE /_standin/requests` | recorded [`RequestRecord`]s (JSON, camelCase) / forget them |
//! | `GET /_standin/stats` | `{requests, busyUs, byVerb, faults: FaultCounts, resourceVersion, latencyMs}` (`busyUs`: the recorded requests' durations added up) |
//! | `GET /_standin/faults` | active rules with `id`, `matched`, `fired` |
//! | `POST /_standin/faults` | add a [`FaultRule`] (JSON object or array) → `{"ids": [..]}` |
//! | `DELETE /_standin/faults`, `DELETE /_standin/faults/ID` | remove all / one rule |
//! | `PUT /_standin/latency` `{"ms": N}` | global per-request latency |
//! | `POST /_standin/compact` | [`Standin::compact`] → `{"compacted": RV}` |
//! | `PUT /_standin/watch-cache` `{"enabled": bool}` | [`Standin::set_watch_cache`] |
//! | `POST /_standin/objects` | insert an object, an array or a `*List` (JSON or YAML) |
//! | `GET /_standin/objects?apiVersion=&kind=[&namespace=][&name=]` | list, or get one |
//! | `PATCH /_standin/objects?apiVersion=&kind=&namespace=&name=` | merge-patch as another actor would (bumps resourceVersion) |
//! | `DELETE /_standin/objects?apiVersion=&kind=&namespace=&name=` | remove one |
//! | `GET /_standin/healthz` | `"ok"` |
//!
//! Fault rule JSON: `{"verb": "patch", "resource": "deployments", "subresource": "scale",
//! "namespace": "dev-a", "name": "web", "nth": 2, "probability": 0.1, "seed": 7, "times": 1,
//! "action": {"type": "status", "code": 429, "retryAfterSeconds": 1}}`; other actions:
//! `{"type": "latency", "ms": 200}`, `{"type": "drop"}`, `{"type": "commitThenDrop"}`,
//! `{"type": "compact"}` (a write elsewhere, then etcd compacts, then the request is served:
//! on the second page of a list it expires the first page's continue token).
//!
//! ## kubectl
//!
//! Discovery is served as plain JSON (kubectl falls back from aggregated discovery), lists and
//! gets are rendered as `meta.k8s.io/v1` Tables when kubectl asks for them, and `/openapi/v2` is
//! an empty protobuf document so client-side validation (`kubectl create/apply`) finds no schema
//! and skips; `/openapi/v3` is 404.

mod admin;
mod api;
mod faults;
mod patch;
mod resources;
pub mod seed;
mod selectors;
mod server;
mod status;
mod store;
mod token;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

pub use faults::{FaultAction, FaultCounts, FaultRule};
pub use patch::{json_patch, merge_patch};
pub use selectors::LabelSelector;
pub use server::RequestRecord;

use server::Inner;

/// Start-up options for [`Standin::start_with`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Address to bind (default `127.0.0.1:0`, i.e. any free port).
    pub listen: SocketAddr,
    /// Latency added to every API request (not to `/_standin/`), e.g. 5 ms for benchmarks.
    pub latency: Duration,
    /// Serve `keda.sh/v1alpha1` ScaledObjects (otherwise 404, as without the CRD).
    pub enable_keda: bool,
    /// Serve `namespace-scheduler.io/v1alpha1` ActivationRequests, with their status
    /// subresource (otherwise 404 for the whole group, as without the CRD).
    pub enable_activation_requests: bool,
    /// Serve `argoproj.io/v1alpha1` Rollouts with their scale subresource (otherwise 404 for
    /// the whole group, as without the CRD).
    pub enable_rollouts: bool,
    /// Reject PUTs without `metadata.resourceVersion` for built-in kinds too (422).
    pub strict_updates: bool,
    /// Default seed for probabilistic fault rules without their own seed.
    pub fault_seed: u64,
    /// Objects inserted before serving (see [`seed::demo`] and [`seed::parse_seed`]).
    pub seed: Vec<Value>,
    /// Serve lists at `resourceVersion=0` whole, `limit` ignored, as kube-apiserver's watch
    /// cache does (default); false pages them like any list (`--watch-cache=false`).
    pub watch_cache: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            latency: Duration::ZERO,
            enable_keda: false,
            enable_activation_requests: false,
            enable_rollouts: false,
            strict_updates: false,
            fault_seed: 0,
            seed: Vec::new(),
            watch_cache: true,
        }
    }
}

/// A running stand-in API server. Stops when dropped (or via [`Standin::shutdown`]).
pub struct Standin {
    inner: Arc<Inner>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Standin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Standin").field("url", &self.url()).finish()
    }
}

impl Standin {
    /// Start on 127.0.0.1 with an ephemeral port and default options. Panics if it cannot bind.
    pub async fn start() -> Standin {
        Self::start_with(Options::default()).await
    }

    /// Start with options. Panics if it cannot bind or a seed object is invalid;
    /// see [`Standin::try_start_with`].
    pub async fn start_with(opts: Options) -> Standin {
        Self::try_start_with(opts).await.expect("standin: failed to start")
    }

    /// Start with options, reporting bind or seed errors. The server runs on the current
    /// tokio runtime: while a test blocks that runtime's only thread (e.g. waiting on
    /// `std::process::Command::output`), the server cannot answer. Use a multi-thread runtime,
    /// `spawn_blocking`, or [`Standin::start_in_thread`] in that case.
    pub async fn try_start_with(opts: Options) -> std::io::Result<Standin> {
        let (inner, listener) = bind(opts).await?;
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(server::serve(listener, inner.clone(), rx));
        Ok(Standin {
            inner,
            stop,
            task: Some(task),
        })
    }

    /// Start on a dedicated OS thread with its own single-threaded runtime. Needs no async
    /// context, so it works from plain `#[test]` functions and next to blocking code such as
    /// running the scheduler binary as a subprocess. Stops when dropped.
    pub fn start_in_thread(opts: Options) -> std::io::Result<Standin> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new().name("standin".into()).spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            rt.block_on(async move {
                match bind(opts).await {
                    Ok((inner, listener)) => {
                        let (stop, stop_rx) = watch::channel(false);
                        let _ = tx.send(Ok((inner.clone(), stop)));
                        server::serve(listener, inner, stop_rx).await;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            });
        })?;
        let (inner, stop) = rx
            .recv()
            .map_err(|_| std::io::Error::other("standin thread exited before starting"))??;
        Ok(Standin {
            inner,
            stop,
            task: None,
        })
    }

    /// Stop serving and wait for the accept loop to end.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    /// A kubeconfig (context `standin`, namespace `default`, dummy bearer token).
    pub fn kubeconfig_yaml(&self) -> String {
        kubeconfig_for(&self.url())
    }

    /// Write [`Standin::kubeconfig_yaml`] to `path`.
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml())
    }

    // ----- state -----

    /// Insert or overwrite an object (`apiVersion`, `kind`, `metadata.name` required). Assigns
    /// uid, resourceVersion, creationTimestamp and defaults; returns the stored object.
    /// Panics on an unknown kind or a missing name; see [`Standin::try_insert`].
    pub fn insert(&self, obj: Value) -> Value {
        self.try_insert(obj).expect("standin: insert failed")
    }

    /// Like [`Standin::insert`], reporting errors.
    pub fn try_insert(&self, obj: Value) -> Result<Value, String> {
        self.inner.insert_obj(obj)
    }

    /// Insert one object, an array of objects or a `*List`.
    pub fn insert_all(&self, doc: Value) -> Result<Vec<Value>, String> {
        self.inner.insert_many(doc)
    }

    /// Read one object. `kind` may be the Kind, plural, singular or a short name
    /// (`"Deployment"`, `"deployments"`, `"deploy"`); `namespace` is ignored for
    /// cluster-scoped kinds.
    pub fn get(&self, api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        self.inner.get_obj(api_version, kind, namespace, name)
    }

    /// All objects of a kind (in one namespace, or all), sorted by namespace/name.
    pub fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        self.inner.list_obj(api_version, kind, namespace)
    }

    /// Remove an object without API semantics; returns it if it existed.
    pub fn remove(&self, api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        self.inner.remove_obj(api_version, kind, namespace, name)
    }

    /// Change an object as another actor would: `f` edits a copy, which is stored with a new
    /// resourceVersion (and generation if `spec` changed). Err if the object does not exist.
    pub fn modify(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) -> Result<Value, String> {
        self.inner.modify_obj(api_version, kind, namespace, name, f)
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.inner.store.lock().expect("store lock").resource_version()
    }

    /// Compact "etcd" at the current resourceVersion (`etcdctl compact`): continue tokens of
    /// lists made at an older one are answered 410 Expired. Returns the compaction revision.
    pub fn compact(&self) -> u64 {
        self.inner.store.lock().expect("store lock").compact(false)
    }

    /// Turn the watch cache off (lists at `resourceVersion=0` are paged) or on again.
    pub fn set_watch_cache(&self, on: bool) {
        self.inner.store.lock().expect("store lock").watch_cache = on;
    }

    /// Insert a Namespace with labels.
    pub fn add_namespace(&self, name: &str, labels: &[(&str, &str)]) -> Value {
        self.insert(seed::namespace(name, labels))
    }

    /// Insert a Deployment (`app=<name>` selector, one container).
    pub fn add_deployment(&self, namespace: &str, name: &str, replicas: i64) -> Value {
        self.insert(seed::deployment(namespace, name, replicas))
    }

    /// Insert a StatefulSet.
    pub fn add_statefulset(&self, namespace: &str, name: &str, replicas: i64) -> Value {
        self.insert(seed::statefulset(namespace, name, replicas))
    }

    /// Insert a CronJob.
    pub fn add_cronjob(&self, namespace: &str, name: &str, suspend: bool) -> Value {
        self.insert(seed::cronjob(namespace, name, suspend))
    }

    /// Insert a KEDA ScaledObject targeting a Deployment.
    pub fn add_scaled_object(&self, namespace: &str, name: &str, target: &str) -> Value {
        self.insert(seed::scaled_object(namespace, name, target))
    }

    /// `spec.replicas` of a Deployment or StatefulSet (`kind` as in [`Standin::get`]).
    pub fn replicas(&self, kind: &str, namespace: &str, name: &str) -> Option<i64> {
        self.get("apps/v1", kind, Some(namespace), name)?["spec"]["replicas"].as_i64()
    }

    /// One annotation of an object.
    pub fn annotation(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        key: &str,
    ) -> Option<String> {
        self.get(api_version, kind, namespace, name)?["metadata"]["annotations"][key]
            .as_str()
            .map(str::to_string)
    }

    // ----- request accounting -----

    /// Every API request served so far (admin requests excluded), oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.inner.requests.lock().expect("requests lock").clone()
    }

    /// Requests being handled right now (admin requests included).
    pub fn in_flight(&self) -> u64 {
        self.inner.in_flight.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until no request is in flight (a killed client's last writes are carried out
    /// before the world is looked at); false if some still are after `timeout`.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while self.in_flight() > 0 {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        true
    }

    /// Number of API requests recorded.
    pub fn request_count(&self) -> usize {
        self.inner.requests.lock().expect("requests lock").len()
    }

    /// Number of recorded requests with this verb (`get`, `list`, `patch`, ...).
    pub fn count_verb(&self, verb: &str) -> usize {
        self.inner
            .requests
            .lock()
            .expect("requests lock")
            .iter()
            .filter(|r| r.verb == verb)
            .count()
    }

    /// Number of recorded requests with this verb on this resource plural.
    pub fn count(&self, verb: &str, resource: &str) -> usize {
        self.inner
            .requests
            .lock()
            .expect("requests lock")
            .iter()
            .filter(|r| r.verb == verb && r.resource == resource)
            .count()
    }

    /// Request counts keyed by verb.
    pub fn counts_by_verb(&self) -> BTreeMap<String, usize> {
        self.inner.counts_by_verb()
    }

    /// Number of TCP connections accepted so far (API and admin).
    pub fn connection_count(&self) -> u64 {
        self.inner.connections.load(Ordering::Relaxed)
    }

    /// Forget recorded requests.
    pub fn reset_requests(&self) {
        self.inner.requests.lock().expect("requests lock").clear();
    }

    // ----- faults and latency -----

    /// Add a fault rule; returns its id. Rules are evaluated in insertion order; latency rules
    /// add up, the first firing status/drop rule decides.
    pub fn add_fault(&self, rule: FaultRule) -> u64 {
        self.inner.faults.lock().expect("faults lock").add(rule)
    }

    /// Remove one fault rule.
    pub fn remove_fault(&self, id: u64) -> bool {
        self.inner.faults.lock().expect("faults lock").remove(id)
    }

    /// Remove all fault rules (the counters are kept).
    pub fn clear_faults(&self) {
        self.inner.faults.lock().expect("faults lock").clear();
    }

    /// Injected fault counts by kind.
    pub fn fault_counts(&self) -> FaultCounts {
        self.inner.faults.lock().expect("faults lock").counts.clone()
    }

    /// How many times fault rule `id` has fired (counted when the request is matched, before
    /// any latency it adds); `None` once the rule is removed.
    pub fn fault_fired(&self, id: u64) -> Option<u64> {
        self.inner.faults.lock().expect("faults lock").fired(id)
    }

    /// Set the global per-request latency.
    pub fn set_latency(&self, latency: Duration) {
        self.inner
            .latency_ms
            .store(latency.as_millis() as u64, Ordering::Relaxed);
    }

    /// Set the default seed for probabilistic rules added afterwards.
    pub fn set_fault_seed(&self, seed: u64) {
        self.inner.faults.lock().expect("faults lock").seed = seed;
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn bind(opts: Options) -> std::io::Result<(Arc<Inner>, tokio::net::TcpListener)> {
    let listener = tokio::net::TcpListener::bind(opts.listen).await?;
    let addr = listener.local_addr()?;
    let mut faults = faults::Faults::default();
    faults.seed = opts.fault_seed;
    let inner = Arc::new(Inner {
        store: Mutex::new(store::Store::with_watch_cache(opts.watch_cache)),
        faults: Mutex::new(faults),
        requests: Mutex::new(Vec::new()),
        seq: AtomicU64::new(0),
        connections: AtomicU64::new(0),
        in_flight: AtomicU64::new(0),
        latency_ms: AtomicU64::new(opts.latency.as_millis() as u64),
        served: resources::Served {
            keda: opts.enable_keda,
            activation_requests: opts.enable_activation_requests,
            rollouts: opts.enable_rollouts,
        },
        strict_updates: opts.strict_updates,
        addr,
    });
    inner
        .insert_many(Value::Array(opts.seed))
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    Ok((inner, listener))
}

/// A kubeconfig pointing at `url` (context/cluster/user all named `standin`).
pub fn kubeconfig_for(url: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: standin
  cluster:
    server: {url}
contexts:
- name: standin
  context:
    cluster: standin
    user: standin
    namespace: default
current-context: standin
users:
- name: standin
  user:
    token: standin-dummy-token
preferences: {{}}
"
    )
}
