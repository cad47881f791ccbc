//! A "world": one API stand-in seeded with a handful of namespaces, and the truth about every
//! workload in it — the original replica count, suspend state or KEDA pause it had before the
//! scheduler ever touched it — against which every round's cluster state is checked.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{json, Value};
use standin::{Options, Standin};

use crate::faults::Needing;

pub const ANN_REPLICAS: &str = "namespace-scheduler/original-replicas";
pub const ANN_SUSPEND: &str = "namespace-scheduler/original-suspend";
pub const ANN_PAUSED_BY_US: &str = "namespace-scheduler/paused-by-scheduler";
pub const ANN_PAUSED_REPLICAS: &str = "autoscaling.keda.sh/paused-replicas";
/// A ScaledObject's value when it is not paused.
pub const UNPAUSED: i64 = -1;
pub const LABEL_STATUS: &str = "namespace-scheduler/status";
const CC: &str = "namespace-scheduler/cost-center";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Deployment,
    StatefulSet,
    CronJob,
    /// KEDA: its value is `autoscaling.keda.sh/paused-replicas` ([`UNPAUSED`] when absent).
    ScaledObject,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Deployment, Kind::StatefulSet, Kind::CronJob, Kind::ScaledObject];

    pub fn resource(self) -> &'static str {
        match self {
            Kind::Deployment => "deployments",
            Kind::StatefulSet => "statefulsets",
            Kind::CronJob => "cronjobs",
            Kind::ScaledObject => "scaledobjects",
        }
    }

    pub fn api(self) -> (&'static str, &'static str) {
        match self {
            Kind::Deployment => ("apps/v1", "Deployment"),
            Kind::StatefulSet => ("apps/v1", "StatefulSet"),
            Kind::CronJob => ("batch/v1", "CronJob"),
            Kind::ScaledObject => ("keda.sh/v1alpha1", "ScaledObject"),
        }
    }

    /// A value as the scheduler's audit records write it (`3`, `suspend=true`, `paused=0`).
    pub fn shown(self, value: i64) -> String {
        match self {
            Kind::CronJob => format!("suspend={}", value == 1),
            Kind::ScaledObject if value == UNPAUSED => "unpaused".into(),
            Kind::ScaledObject => format!("paused={value}"),
            _ => value.to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Down,
    Up,
}

impl Target {
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Down => "down",
            Target::Up => "up",
        }
    }
    /// The `--at` instant for which `run` decides this target (a Wednesday in Bogotá).
    /// The other target: every round asks for the state the world is not in, so it writes.
    pub fn other(self) -> Target {
        match self {
            Target::Down => Target::Up,
            Target::Up => Target::Down,
        }
    }

    pub fn at(self) -> &'static str {
        match self {
            Target::Down => "2026-11-25T20:00:00-05:00",
            Target::Up => "2026-11-25T10:00:00-05:00",
        }
    }
}

/// One workload and its truth.
#[derive(Debug, Clone)]
pub struct Workload {
    pub kind: Kind,
    pub ns: String,
    pub name: String,
    /// Replicas, for a CronJob `suspend` as 0/1, for a ScaledObject its paused replicas
    /// ([`UNPAUSED`]), before the scheduler ever ran.
    pub original: i64,
    /// False for workloads the scheduler must never write (excluded, operator-owned, in a
    /// protected or excluded namespace).
    pub touchable: bool,
}

/// What the cluster holds for one workload: the value (replicas, or suspend as 0/1) and our
/// annotation, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub value: i64,
    pub ann: Option<String>,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.ann {
            Some(a) => write!(f, "{}[{a}]", self.value),
            None => write!(f, "{}", self.value),
        }
    }
}

impl Workload {
    /// The only state this workload may be in when it is up.
    pub fn up_state(&self) -> State {
        State {
            value: self.original,
            ann: None,
        }
    }

    /// The only state it may be in when it is down: off, with the original recorded.
    pub fn down_state(&self) -> State {
        match self.kind {
            Kind::CronJob if self.original == 0 => State {
                value: 1,
                ann: Some("false".into()),
            },
            Kind::CronJob => self.up_state(),
            Kind::ScaledObject if self.original == UNPAUSED => State {
                value: 0,
                ann: Some("true".into()),
            },
            // Paused by someone else: off on purpose, left as it is.
            Kind::ScaledObject => self.up_state(),
            _ if self.original > 0 => State {
                value: 0,
                ann: Some(self.original.to_string()),
            },
            _ => self.up_state(),
        }
    }

    pub fn target_state(&self, t: Target) -> State {
        match (self.touchable, t) {
            (false, _) | (true, Target::Up) => self.up_state(),
            (true, Target::Down) => self.down_state(),
        }
    }

    pub fn id(&self) -> String {
        format!("{}/{:?}/{}", self.ns, self.kind, self.name)
    }
}

pub type Snapshot = BTreeMap<String, State>;

/// An object's value and the key of our annotation on it.
fn value_of(kind: Kind, o: &Value) -> (i64, &'static str) {
    match kind {
        Kind::CronJob => (o["spec"]["suspend"].as_bool().unwrap_or(false) as i64, ANN_SUSPEND),
        Kind::ScaledObject => (
            o["metadata"]["annotations"][ANN_PAUSED_REPLICAS]
                .as_str()
                .map_or(UNPAUSED, |v| v.parse().unwrap_or(i64::MIN)),
            ANN_PAUSED_BY_US,
        ),
        _ => (o["spec"]["replicas"].as_i64().unwrap_or(-1), ANN_REPLICAS),
    }
}

pub struct World {
    pub id: u64,
    pub standin: Standin,
    pub kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
    /// Managed namespaces (scaled by `run`).
    pub managed: Vec<String>,
    /// Namespaces that must never be written (protected, excluded).
    pub untouchable_ns: Vec<String>,
    pub workloads: Vec<Workload>,
    /// Where the last clean run left the world (seeded: up).
    pub current: std::cell::Cell<Target>,
}

impl World {
    /// Seeds a new stand-in: 2–5 managed namespaces with 1–3 Deployments (0–7 replicas), maybe a
    /// StatefulSet, 0–2 CronJobs (some suspended), sometimes an excluded or operator-owned
    /// Deployment; a protected and sometimes an excluded namespace with workloads of their own.
    pub fn new(id: u64, rng: &mut fastrand::Rng) -> World {
        let standin = Standin::start_in_thread(Options {
            fault_seed: rng.u64(..),
            enable_keda: true,
            ..Options::default()
        })
        .expect("start the API stand-in");
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig");
        standin.write_kubeconfig(&kubeconfig).expect("write kubeconfig");
        standin.add_namespace("task-scheduler", &[]);
        let mut w = World {
            id,
            standin,
            kubeconfig,
            _dir: dir,
            managed: vec![],
            untouchable_ns: vec!["kube-system".into()],
            workloads: vec![],
            current: std::cell::Cell::new(Target::Up),
        };
        w.standin.add_namespace("kube-system", &[]);
        w.add(Kind::Deployment, "kube-system", "coredns", 2, false);
        for i in 0..rng.usize(2..=5) {
            let ns = format!("w{id}-n{i}");
            w.standin.add_namespace(&ns, &[(CC, "IT-DEVELOPMENT")]);
            w.managed.push(ns.clone());
            w.populate(&ns, rng, true);
        }
        if rng.f64() < 0.3 {
            let ns = format!("w{id}-excluded");
            w.standin
                .add_namespace(&ns, &[(CC, "IT-DEVELOPMENT"), ("namespace-scheduler/exclude", "true")]);
            w.untouchable_ns.push(ns.clone());
            w.populate(&ns, rng, false);
        }
        w
    }

    fn populate(&mut self, ns: &str, rng: &mut fastrand::Rng, touchable: bool) {
        let replicas = |rng: &mut fastrand::Rng| rng.i64(0..=7);
        for d in 0..rng.usize(1..=3) {
            // A managed namespace always has one workload to scale, so every round writes.
            let r = if d == 0 && touchable {
                rng.i64(1..=7)
            } else {
                replicas(rng)
            };
            self.add(Kind::Deployment, ns, &format!("deploy-{d}"), r, touchable);
        }
        if rng.bool() {
            let r = replicas(rng);
            self.add(Kind::StatefulSet, ns, "db", r, touchable);
        }
        for c in 0..rng.usize(0..=2) {
            let suspended = rng.f64() < 0.3;
            self.add(Kind::CronJob, ns, &format!("cron-{c}"), suspended as i64, touchable);
        }
        if rng.f64() < 0.5 {
            self.add(Kind::ScaledObject, ns, "keda", UNPAUSED, touchable);
        }
        if rng.f64() < 0.15 {
            // Paused by someone else: the scheduler must neither unpause nor mark it.
            let mut o = standin::seed::scaled_object(ns, "keda-paused", "deploy-0");
            o["metadata"]["annotations"] = json!({ANN_PAUSED_REPLICAS: "2"});
            self.insert(Kind::ScaledObject, o, false);
        }
        if rng.f64() < 0.3 {
            let mut o = standin::seed::deployment(ns, "excluded", rng.i64(1..=7));
            o["metadata"]["annotations"] = json!({"namespace-scheduler/exclude": "true"});
            self.insert(Kind::Deployment, o, false);
        }
        if rng.f64() < 0.2 {
            let mut o = standin::seed::deployment(ns, "operated", rng.i64(1..=7));
            o["metadata"]["ownerReferences"] = json!([{
                "apiVersion": "cache.example.com/v1", "kind": "RedisCluster", "name": "operated",
                "uid": "6a1b8f3e-3c55-4a7e-9f52-0d2b1c9e7a10", "controller": true,
            }]);
            self.insert(Kind::Deployment, o, false);
        }
    }

    fn add(&mut self, kind: Kind, ns: &str, name: &str, original: i64, touchable: bool) {
        let o = match kind {
            Kind::Deployment => standin::seed::deployment(ns, name, original),
            Kind::StatefulSet => standin::seed::statefulset(ns, name, original),
            Kind::CronJob => standin::seed::cronjob(ns, name, original == 1),
            Kind::ScaledObject => standin::seed::scaled_object(ns, name, "deploy-0"),
        };
        self.insert(kind, o, touchable);
    }

    fn insert(&mut self, kind: Kind, o: Value, touchable: bool) {
        let original = value_of(kind, &o).0;
        let ns = o["metadata"]["namespace"].as_str().unwrap_or_default().to_string();
        let name = o["metadata"]["name"].as_str().unwrap_or_default().to_string();
        self.standin.insert(o);
        self.workloads.push(Workload {
            kind,
            ns,
            name,
            original,
            touchable,
        });
    }

    pub fn state_of(&self, w: &Workload) -> State {
        let (api, kind) = w.kind.api();
        let o = self
            .standin
            .get(api, kind, Some(&w.ns), &w.name)
            .unwrap_or_else(|| panic!("{} vanished", w.id()));
        let (value, key) = value_of(w.kind, &o);
        State {
            value,
            ann: o["metadata"]["annotations"][key].as_str().map(str::to_string),
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        self.workloads.iter().map(|w| (w.id(), self.state_of(w))).collect()
    }

    pub fn in_ns<'a>(&'a self, ns: &'a str) -> impl Iterator<Item = &'a Workload> + 'a {
        self.workloads.iter().filter(move |w| w.ns == ns)
    }

    /// Whether every touchable workload of `ns` is at `target` in `snap`.
    pub fn ns_at(&self, snap: &Snapshot, ns: &str, target: Target) -> bool {
        self.in_ns(ns).all(|w| snap[&w.id()] == w.target_state(target))
    }

    /// Whether `ns` holds the same workload states in `a` and `b`.
    pub fn ns_same(&self, a: &Snapshot, b: &Snapshot, ns: &str) -> bool {
        self.in_ns(ns).all(|w| a[&w.id()] == b[&w.id()])
    }

    pub fn ns_status_label(&self, ns: &str) -> Option<String> {
        let o = self.standin.get("v1", "Namespace", None, ns)?;
        o["metadata"]["labels"][LABEL_STATUS].as_str().map(str::to_string)
    }

    /// "No original count lost": every workload is either up (its original, no annotation) or
    /// down (off, its original in our annotation); untouchable ones are exactly as seeded.
    pub fn lost_counts(&self, snap: &Snapshot) -> Vec<String> {
        let mut bad = vec![];
        for w in &self.workloads {
            let s = &snap[&w.id()];
            let ok = if w.touchable {
                *s == w.up_state() || *s == w.down_state()
            } else {
                *s == w.up_state()
            };
            if !ok {
                bad.push(format!(
                    "{}: holds {s}, original {} ({}) — neither up {} nor down {}",
                    w.id(),
                    w.original,
                    if w.touchable {
                        "managed"
                    } else {
                        "must never be touched"
                    },
                    w.up_state(),
                    w.down_state()
                ));
            }
        }
        bad
    }

    /// Writes (recorded after request `since`) to an object the scheduler must never write or
    /// into a protected or excluded namespace.
    pub fn forbidden_writes(&self, since: u64) -> Vec<String> {
        self.standin
            .requests()
            .into_iter()
            .filter(|r| r.seq > since && matches!(r.verb.as_str(), "patch" | "update" | "create" | "delete"))
            .filter(|r| {
                let untouchable_obj = self
                    .workloads
                    .iter()
                    .any(|w| !w.touchable && w.ns == r.namespace && w.name == r.name && r.resource != "events");
                let ns_write = self.untouchable_ns.contains(&r.namespace);
                let ns_itself = r.resource == "namespaces" && self.untouchable_ns.contains(&r.name);
                untouchable_obj || ns_write || ns_itself
            })
            .map(|r| format!("{} {}{}", r.method, r.path, if r.query.is_empty() { "" } else { "?…" }))
            .collect()
    }

    /// Pretends the Lease's holder went silent long ago (what a SIGKILLed run leaves behind once
    /// its duration has passed), without waiting for it.
    pub fn expire_lease(&self) {
        let _ = self.standin.modify(
            "coordination.k8s.io/v1",
            "Lease",
            Some("task-scheduler"),
            "namespace-scheduler",
            |o| {
                o["spec"]["renewTime"] = json!("2000-01-01T00:00:00.000000Z");
                o["spec"]["acquireTime"] = json!("2000-01-01T00:00:00.000000Z");
            },
        );
    }

    /// The workloads a run to `target` must write from `snap`.
    pub fn needing(&self, snap: &Snapshot, target: Target) -> Vec<Needing> {
        self.workloads
            .iter()
            .filter(|w| snap[&w.id()] != w.target_state(target))
            .map(|w| Needing {
                ns: w.ns.clone(),
                name: w.name.clone(),
                resource: w.kind.resource(),
            })
            .collect()
    }
}
