//! The object store: all state, every write path, the global resourceVersion.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::patch::{self, PatchType};
use crate::resources::ResourceDef;
use crate::status::ApiError;

mod list;
mod status;

pub use list::ListQuery;
use status::keep_status;

type Key = (String, String);

/// All objects plus the global resourceVersion counter.
#[derive(Debug, Default)]
pub struct Store {
    rv: u64,
    /// etcd's compaction revision: continue tokens of an older list are expired (410).
    compacted: u64,
    /// Lists at `resourceVersion=0` are served whole, as kube-apiserver's watch cache does
    /// (`limit` ignored); off, they are paged like any other list (`--watch-cache=false`).
    pub watch_cache: bool,
    rng: u64,
    data: BTreeMap<(&'static str, &'static str), BTreeMap<Key, Value>>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str().filter(|s| !s.is_empty())
}

fn key(def: &ResourceDef, ns: Option<&str>, name: &str) -> Key {
    let ns = if def.namespaced { ns.unwrap_or("default") } else { "" };
    (ns.to_string(), name.to_string())
}

impl Store {
    /// An empty store, its watch cache on or off.
    pub fn with_watch_cache(on: bool) -> Self {
        Store {
            watch_cache: on,
            ..Store::default()
        }
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// Like `etcdctl compact <current revision>`: a continue token of a list made before
    /// (at an older revision) is now expired. With `after_a_write`, one write elsewhere in the
    /// cluster (a Lease renewal) lands first, so even a token made at the current revision is.
    pub fn compact(&mut self, after_a_write: bool) -> u64 {
        if after_a_write {
            self.rv += 1;
        }
        self.compacted = self.rv;
        self.compacted
    }

    fn uid(&mut self) -> String {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng ^ (std::process::id() as u64) << 32;
        let mut next = || {
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let (a, b) = (next(), next());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            (b >> 48) & 0x3fff | 0x8000,
            b & 0xffff_ffff_ffff
        )
    }

    /// Fill server-managed fields and defaults; stores unless `dry_run`.
    fn commit(
        &mut self,
        def: &'static ResourceDef,
        k: Key,
        old: Option<&Value>,
        mut obj: Value,
        dry_run: bool,
    ) -> Value {
        if !obj.is_object() {
            obj = json!({});
        }
        obj["apiVersion"] = json!(def.api_version());
        obj["kind"] = json!(def.kind);
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        let meta = obj["metadata"].as_object_mut().expect("object");
        meta.insert("name".into(), json!(k.1));
        if def.namespaced {
            meta.insert("namespace".into(), json!(k.0));
        } else {
            meta.remove("namespace");
        }
        meta.remove("managedFields");
        for f in ["labels", "annotations"] {
            if meta
                .get(f)
                .is_some_and(|v| v.as_object().is_some_and(Map::is_empty) || v.is_null())
            {
                meta.remove(f);
            }
        }
        match old {
            Some(old) => {
                // deletionTimestamp is set by a delete only and can never be changed or removed.
                for f in ["uid", "creationTimestamp", "generation", "deletionTimestamp"] {
                    match old["metadata"].get(f) {
                        Some(v) => meta.insert(f.into(), v.clone()),
                        None => meta.remove(f),
                    };
                }
            }
            None => {
                if meta.get("uid").and_then(Value::as_str).is_none_or(str::is_empty) {
                    meta.insert("uid".into(), json!(self.uid()));
                }
                if meta
                    .get("creationTimestamp")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    meta.insert("creationTimestamp".into(), json!(now()));
                }
                meta.remove("generation");
            }
        }
        if def.has_generation {
            let gen = match old {
                None => 1,
                Some(old) => {
                    let g = old["metadata"]["generation"].as_i64().unwrap_or(1);
                    if old.get("spec") != obj.get("spec") {
                        g + 1
                    } else {
                        g
                    }
                }
            };
            obj["metadata"]["generation"] = json!(gen);
        }
        defaults(def, &k.1, &mut obj);
        let rv = self.rv + 1;
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        if !dry_run {
            self.rv = rv;
            self.data
                .entry((def.group, def.plural))
                .or_default()
                .insert(k.clone(), obj.clone());
            // Dropping the last finalizer of an object being deleted completes its deletion.
            self.reap(def, &k);
        }
        obj
    }

    fn table(&self, def: &ResourceDef) -> Option<&BTreeMap<Key, Value>> {
        self.data.get(&(def.group, def.plural))
    }

    /// Whether a namespace exists.
    pub fn namespace_exists(&self, ns: &str) -> bool {
        self.data
            .get(&("", "namespaces"))
            .is_some_and(|t| t.contains_key(&(String::new(), ns.to_string())))
    }

    /// Whether a namespace has been deleted and waits for its content to go (phase Terminating).
    pub fn namespace_terminating(&self, ns: &str) -> bool {
        self.data
            .get(&("", "namespaces"))
            .and_then(|t| t.get(&(String::new(), ns.to_string())))
            .is_some_and(|o| o["metadata"]["deletionTimestamp"].is_string())
    }

    /// Removes an object marked for deletion once its finalizers are gone, and a Terminating
    /// namespace once nothing is left in it (what the garbage collector and the namespace
    /// controller do on a real cluster).
    fn reap(&mut self, def: &ResourceDef, k: &Key) {
        let done = self
            .table(def)
            .and_then(|t| t.get(k))
            .is_some_and(|o| o["metadata"]["deletionTimestamp"].is_string() && !has_finalizers(o));
        if !done {
            return;
        }
        if let Some(t) = self.data.get_mut(&(def.group, def.plural)) {
            t.remove(k);
            self.rv += 1;
        }
        let ns = if def.namespaced { k.0.clone() } else { return };
        let empty = self
            .data
            .iter()
            .all(|(&(_, plural), t)| plural == "namespaces" || !t.keys().any(|key| key.0 == ns));
        if empty && self.namespace_terminating(&ns) {
            if let Some(t) = self.data.get_mut(&("", "namespaces")) {
                t.remove(&(String::new(), ns));
                self.rv += 1;
            }
        }
    }

    /// Sets `deletionTimestamp` (once) as a write of its own (new resourceVersion).
    fn mark_for_deletion(&mut self, def: &ResourceDef, k: &Key) -> Option<Value> {
        let rv = self.rv + 1;
        let o = self.data.get_mut(&(def.group, def.plural))?.get_mut(k)?;
        if o["metadata"]["deletionTimestamp"].is_null() {
            o["metadata"]["deletionTimestamp"] = json!(now());
        }
        if def.kind == "Namespace" {
            o["status"]["phase"] = json!("Terminating");
        }
        o["metadata"]["resourceVersion"] = json!(rv.to_string());
        let out = o.clone();
        self.rv = rv;
        Some(out)
    }

    /// Insert or overwrite an object without any API checks (seeding).
    pub fn upsert(&mut self, def: &'static ResourceDef, obj: Value) -> Result<Value, ApiError> {
        let name = meta_str(&obj, "name").ok_or_else(|| ApiError::bad_request("metadata.name is required"))?;
        let k = key(def, meta_str(&obj, "namespace"), name);
        let old = self.table(def).and_then(|t| t.get(&k)).cloned();
        Ok(self.commit(def, k, old.as_ref(), obj, false))
    }

    /// Read one object.
    pub fn get(&self, def: &ResourceDef, ns: Option<&str>, name: &str) -> Result<Value, ApiError> {
        self.table(def)
            .and_then(|t| t.get(&key(def, ns, name)))
            .cloned()
            .ok_or_else(|| ApiError::not_found(def, name))
    }

    /// POST: create a new object.
    pub fn create(
        &mut self,
        def: &'static ResourceDef,
        ns: Option<&str>,
        mut obj: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request("the body of the request was not a JSON object"));
        }
        if let (Some(path_ns), Some(body_ns)) = (ns, meta_str(&obj, "namespace")) {
            if def.namespaced && path_ns != body_ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
        let name = match (meta_str(&obj, "name"), meta_str(&obj, "generateName")) {
            (Some(n), _) => n.to_string(),
            (None, Some(g)) => format!("{g}{}", &self.uid().replace('-', "")[..5]),
            (None, None) => {
                return Err(ApiError::invalid(
                    def,
                    "",
                    "metadata.name: Required value: name or generateName is required",
                ))
            }
        };
        if let Some(ns) = ns.filter(|_| def.namespaced) {
            if !self.namespace_exists(ns) {
                return Err(ApiError::not_found(&crate::resources::RESOURCES[0], ns));
            }
            if self.namespace_terminating(ns) {
                return Err(ApiError::namespace_terminating(def, &name, ns));
            }
        }
        if def.group.is_empty() && def.kind == "Event" {
            validate_core_event(def, &name, ns.unwrap_or(""), &obj)?;
        }
        let k = key(def, ns, &name);
        if self.table(def).is_some_and(|t| t.contains_key(&k)) {
            return Err(ApiError::already_exists(def, &name));
        }
        let meta = obj["metadata"]
            .as_object_mut()
            .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
        for f in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
        ] {
            meta.remove(f);
        }
        if def.status {
            // Only the status subresource writes it.
            obj.as_object_mut().expect("object").remove("status");
        }
        Ok(self.commit(def, k, None, obj, dry_run))
    }

    /// PUT: replace an existing object (optimistic concurrency on metadata.resourceVersion).
    pub fn update(
        &mut self,
        def: &'static ResourceDef,
        ns: Option<&str>,
        name: &str,
        mut obj: Value,
        require_rv: bool,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request("the body of the request was not a JSON object"));
        }
        if let Some(body_name) = meta_str(&obj, "name") {
            if body_name != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({name})"
                )));
            }
        }
        if let (Some(path_ns), Some(body_ns)) = (ns, meta_str(&obj, "namespace")) {
            if def.namespaced && path_ns != body_ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
        let current = self.get(def, ns, name)?;
        if let Some(uid) = meta_str(&obj, "uid") {
            if Some(uid) != meta_str(&current, "uid") {
                let have = meta_str(&current, "uid").unwrap_or("");
                return Err(ApiError::new(
                    409,
                    "Conflict",
                    format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {have}"),
                ));
            }
        }
        match meta_str(&obj, "resourceVersion") {
            Some(rv) if Some(rv) != meta_str(&current, "resourceVersion") => return Err(ApiError::conflict(def, name)),
            None if require_rv || def.custom => {
                return Err(ApiError::invalid(
                    def,
                    name,
                    "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update",
                ))
            }
            _ => {}
        }
        keep_status(def, &current, &mut obj);
        Ok(self.commit(def, key(def, ns, name), Some(&current), obj, dry_run))
    }

    /// PATCH: apply a patch; a `metadata.resourceVersion` (or `uid`) the patch leaves in the
    /// result that differs from the stored one is a 409, as in the apiserver.
    pub fn patch(
        &mut self,
        def: &'static ResourceDef,
        ns: Option<&str>,
        name: &str,
        kind: PatchType,
        body: &Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let current = match self.get(def, ns, name) {
            Ok(c) => c,
            Err(_) if kind == PatchType::Apply => {
                let mut obj = json!({"metadata": {"name": name}});
                patch::merge_patch(&mut obj, body);
                return self.create(def, ns, obj, dry_run);
            }
            Err(e) => return Err(e),
        };
        let mut patched = patch::apply(&current, body, kind).map_err(|m| {
            ApiError::new(
                422,
                "Invalid",
                format!("the server rejected our request due to an error in our request: {m}"),
            )
        })?;
        if !patched.is_object() {
            return Err(ApiError::bad_request("the patch did not produce a JSON object"));
        }
        // A precondition the patch carries: present and different from the stored value.
        let stale = |f: &str| meta_str(&patched, f).is_some() && meta_str(&patched, f) != meta_str(&current, f);
        if stale("resourceVersion") {
            return Err(ApiError::conflict(def, name));
        }
        if stale("uid") {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Precondition failed: UID in precondition: {}, UID in object meta: {}",
                    meta_str(&patched, "uid").unwrap_or(""),
                    meta_str(&current, "uid").unwrap_or("")
                ),
            ));
        }
        keep_status(def, &current, &mut patched);
        Ok(self.commit(def, key(def, ns, name), Some(&current), patched, dry_run))
    }

    /// Change an object as another actor would (bumps resourceVersion and generation).
    pub fn modify(
        &mut self,
        def: &'static ResourceDef,
        ns: Option<&str>,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) -> Result<Value, ApiError> {
        let current = self.get(def, ns, name)?;
        let mut new = current.clone();
        f(&mut new);
        Ok(self.commit(def, key(def, ns, name), Some(&current), new, false))
    }

    /// DELETE, honouring `preconditions` in the DeleteOptions body.
    pub fn delete(
        &mut self,
        def: &'static ResourceDef,
        ns: Option<&str>,
        name: &str,
        opts: &Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let current = self.get(def, ns, name)?;
        for (f, label) in [("resourceVersion", "ResourceVersion"), ("uid", "UID")] {
            if let Some(want) = opts["preconditions"][f].as_str() {
                let have = meta_str(&current, f).unwrap_or("");
                if want != have {
                    return Err(ApiError::new(
                        409,
                        "Conflict",
                        format!("Precondition failed: {label} in precondition: {want}, {label} in object meta: {have}"),
                    ));
                }
            }
        }
        if dry_run {
            return Ok(current);
        }
        if def.plural == "namespaces" && def.group.is_empty() {
            // As on a real cluster: the namespace turns Terminating; its content goes, except
            // objects held by a finalizer, which are marked for deletion and keep the
            // namespace Terminating until their finalizers are removed.
            let obj = self.mark_for_deletion(def, &key(def, ns, name)).unwrap_or(current);
            let content: Vec<(&'static ResourceDef, Key, bool)> = crate::resources::RESOURCES
                .iter()
                .filter(|d| d.namespaced)
                .flat_map(|d| {
                    self.table(d)
                        .into_iter()
                        .flat_map(|t| t.iter())
                        .filter(|(k, _)| k.0 == name)
                        .map(move |(k, o)| (d, k.clone(), has_finalizers(o)))
                })
                .collect();
            let mut held = Vec::new();
            for (d, k, finalized) in content {
                if finalized {
                    held.push((d, k));
                } else if let Some(t) = self.data.get_mut(&(d.group, d.plural)) {
                    t.remove(&k);
                }
            }
            self.rv += 1;
            for (d, k) in &held {
                self.mark_for_deletion(d, k);
            }
            if held.is_empty() {
                self.remove(def, ns, name);
            }
            return Ok(obj);
        }
        if has_finalizers(&current) {
            // Marked for deletion; it goes once its finalizers are removed.
            return Ok(self.mark_for_deletion(def, &key(def, ns, name)).unwrap_or(current));
        }
        self.remove(def, ns, name);
        let mut details = json!({"name": name, "kind": def.plural, "uid": meta_str(&current, "uid")});
        if !def.group.is_empty() {
            details["group"] = json!(def.group);
        }
        Ok(json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}))
    }

    /// Remove without API semantics (bumps resourceVersion). Returns the removed object.
    pub fn remove(&mut self, def: &ResourceDef, ns: Option<&str>, name: &str) -> Option<Value> {
        let out = self.data.get_mut(&(def.group, def.plural))?.remove(&key(def, ns, name));
        if out.is_some() {
            self.rv += 1;
        }
        out
    }

    /// GET .../scale.
    pub fn get_scale(&self, def: &ResourceDef, ns: Option<&str>, name: &str) -> Result<Value, ApiError> {
        Ok(scale_of(&self.get(def, ns, name)?))
    }

    /// PUT .../scale with an autoscaling/v1 Scale body.
    pub fn update_scale(
        &mut self,
        def: &'static ResourceDef,
        ns: Option<&str>,
        name: &str,
        scale: &Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let current = self.get(def, ns, name)?;
        if let Some(rv) = meta_str(scale, "resourceVersion") {
            if Some(rv) != meta_str(&current, "resourceVersion") {
                return Err(ApiError::conflict(def, name));
            }
        }
        let replicas = scale["spec"]["replicas"].as_i64().unwrap_or(0);
        if replicas < 0 {
            return Err(ApiError::invalid(
                def,
                name,
                "spec.replicas: Invalid value: must be greater than or equal to 0",
            ));
        }
        let mut new = current.clone();
        new["spec"]["replicas"] = json!(replicas);
        let stored = self.commit(def, key(def, ns, name), Some(&current), new, dry_run);
        Ok(scale_of(&stored))
    }

    /// PATCH .../scale: the patch applies to the Scale document.
    pub fn patch_scale(
        &mut self,
        def: &'static ResourceDef,
        ns: Option<&str>,
        name: &str,
        kind: PatchType,
        body: &Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let current = self.get_scale(def, ns, name)?;
        let patched = patch::apply(&current, body, kind).map_err(|m| ApiError::new(422, "Invalid", m))?;
        self.update_scale(def, ns, name, &patched, dry_run)
    }
}

fn scale_of(obj: &Value) -> Value {
    let selector = obj["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let meta = &obj["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
            "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": obj["spec"]["replicas"]},
        "status": {"replicas": obj["status"]["replicas"], "selector": selector},
    })
}

/// Apiserver defaulting plus an instantly-converged status for workloads.
fn has_finalizers(obj: &Value) -> bool {
    obj["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty())
}

/// The apiserver's check of a core/v1 Event: `involvedObject.namespace` must equal the Event's
/// own namespace (or both be empty, or the Event be in `default`, for old clients).
fn validate_core_event(def: &ResourceDef, name: &str, namespace: &str, obj: &Value) -> Result<(), ApiError> {
    let involved = obj["involvedObject"]["namespace"].as_str().unwrap_or("");
    let ok = if involved.is_empty() {
        namespace.is_empty() || namespace == "default"
    } else {
        involved == namespace
    };
    if ok {
        return Ok(());
    }
    Err(ApiError::invalid(
        def,
        name,
        format!("involvedObject.namespace: Invalid value: {involved:?}: does not match event.namespace"),
    ))
}

fn defaults(def: &ResourceDef, name: &str, obj: &mut Value) {
    match (def.group, def.kind) {
        ("apps", kind @ ("Deployment" | "StatefulSet")) => {
            if !obj["spec"].is_object() {
                obj["spec"] = json!({});
            }
            if obj["spec"]["replicas"].is_null() {
                obj["spec"]["replicas"] = json!(1);
            }
            let r = obj["spec"]["replicas"].clone();
            let gen = obj["metadata"]["generation"].clone();
            let mut status =
                json!({"observedGeneration": gen, "replicas": r, "readyReplicas": r, "updatedReplicas": r});
            if kind == "Deployment" {
                status["availableReplicas"] = r;
            } else {
                status["currentReplicas"] = r;
            }
            obj["status"] = status;
        }
        ("argoproj.io", "Rollout") => {
            if !obj["spec"].is_object() {
                obj["spec"] = json!({});
            }
            if obj["spec"]["replicas"].is_null() {
                obj["spec"]["replicas"] = json!(1);
            }
        }
        ("autoscaling", "HorizontalPodAutoscaler") => hpa_defaults(obj),
        ("batch", "CronJob") => {
            if !obj["spec"].is_object() {
                obj["spec"] = json!({});
            }
            if obj["spec"]["suspend"].is_null() {
                obj["spec"]["suspend"] = json!(false);
            }
        }
        ("", "Namespace") => {
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
            if obj["spec"]["finalizers"].is_null() {
                obj["spec"]["finalizers"] = json!(["kubernetes"]);
            }
            let phase = if obj["metadata"]["deletionTimestamp"].is_string() {
                "Terminating"
            } else {
                "Active"
            };
            obj["status"] = json!({"phase": phase});
        }
        _ => {}
    }
}

/// autoscaling/v2 defaulting (SetDefaults_HorizontalPodAutoscaler): `minReplicas` 1 when unset;
/// a `behavior` that is set gets both directions' rules filled in (select policy `Max`, the
/// default policies, scale-up stabilization 0; scale-down stabilization stays unset); an unset
/// `behavior` stays unset.
fn hpa_defaults(obj: &mut Value) {
    if !obj["spec"].is_object() {
        obj["spec"] = json!({});
    }
    if obj["spec"]["minReplicas"].is_null() {
        obj["spec"]["minReplicas"] = json!(1);
    }
    let Some(behavior) = obj["spec"]["behavior"].as_object_mut() else {
        return;
    };
    let up = json!({"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
        {"type": "Pods", "value": 4, "periodSeconds": 15},
        {"type": "Percent", "value": 100, "periodSeconds": 15}]});
    let down = json!({"selectPolicy": "Max", "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]});
    for (direction, defaults) in [("scaleUp", up), ("scaleDown", down)] {
        let rules = behavior.entry(direction).or_insert_with(|| json!({}));
        if !rules.is_object() {
            *rules = json!({});
        }
        for (k, v) in defaults.as_object().expect("object") {
            if rules[k.as_str()].is_null() {
                rules[k.as_str()] = v.clone();
            }
        }
    }
}
