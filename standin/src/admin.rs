//! The `/_standin/` admin surface, for driving the stand-in from other processes, and the
//! object-level helpers shared with the library API.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use serde_json::{json, Value};

use crate::faults::FaultRule;
use crate::patch;
use crate::resources::{self, ResourceDef};
use crate::server::{json_response, Inner, Resp};
use crate::status::ApiError;

fn resolve(api_version: &str, kind: &str) -> Result<&'static ResourceDef, String> {
    resources::lookup(api_version, kind).ok_or_else(|| format!("unknown kind {kind:?} in {api_version:?}"))
}

impl Inner {
    pub(crate) fn insert_obj(&self, obj: Value) -> Result<Value, String> {
        let av = obj["apiVersion"].as_str().ok_or("object without apiVersion")?;
        let kind = obj["kind"].as_str().ok_or("object without kind")?;
        let def = resolve(av, kind)?;
        self.store
            .lock()
            .expect("store lock")
            .upsert(def, obj)
            .map_err(|e| e.message)
    }

    /// Insert one object, an array of objects, or a `*List` document.
    pub(crate) fn insert_many(&self, doc: Value) -> Result<Vec<Value>, String> {
        match doc {
            Value::Array(items) => items.into_iter().map(|o| self.insert_obj(o)).collect(),
            Value::Object(ref m) if m.get("items").is_some_and(Value::is_array) => doc["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|o| self.insert_obj(o.clone()))
                .collect(),
            Value::Null => Ok(vec![]),
            other => Ok(vec![self.insert_obj(other)?]),
        }
    }

    pub(crate) fn get_obj(&self, api_version: &str, kind: &str, ns: Option<&str>, name: &str) -> Option<Value> {
        let def = resolve(api_version, kind).ok()?;
        self.store.lock().expect("store lock").get(def, ns, name).ok()
    }

    pub(crate) fn list_obj(&self, api_version: &str, kind: &str, ns: Option<&str>) -> Vec<Value> {
        let Ok(def) = resolve(api_version, kind) else {
            return vec![];
        };
        let list = self
            .store
            .lock()
            .expect("store lock")
            .list(def, ns, &Default::default());
        match list {
            Ok(mut l) => match l["items"].take() {
                Value::Array(a) => a,
                _ => vec![],
            },
            Err(_) => vec![],
        }
    }

    pub(crate) fn remove_obj(&self, api_version: &str, kind: &str, ns: Option<&str>, name: &str) -> Option<Value> {
        let def = resolve(api_version, kind).ok()?;
        self.store.lock().expect("store lock").remove(def, ns, name)
    }

    pub(crate) fn modify_obj(
        &self,
        api_version: &str,
        kind: &str,
        ns: Option<&str>,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) -> Result<Value, String> {
        let def = resolve(api_version, kind)?;
        self.store
            .lock()
            .expect("store lock")
            .modify(def, ns, name, f)
            .map_err(|e| e.message)
    }

    pub(crate) fn counts_by_verb(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for r in self.requests.lock().expect("requests lock").iter() {
            *m.entry(r.verb.clone()).or_default() += 1;
        }
        m
    }

    pub(crate) fn stats(&self) -> Value {
        let (requests, busy_us) = {
            let r = self.requests.lock().expect("requests lock");
            (r.len(), r.iter().map(|x| x.duration_us).sum::<u64>())
        };
        json!({
            "requests": requests,
            "busyUs": busy_us,
            "byVerb": self.counts_by_verb(),
            "faults": self.faults.lock().expect("faults lock").counts,
            "resourceVersion": self.store.lock().expect("store lock").resource_version().to_string(),
            "latencyMs": self.latency_ms.load(Ordering::Relaxed),
        })
    }
}

fn q<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

fn err(code: u16, msg: impl Into<String>) -> Resp {
    let reason = if code == 404 { "NotFound" } else { "BadRequest" };
    json_response(code, &ApiError::new(code, reason, msg).to_status(), &[])
}

fn ok(v: &Value) -> Resp {
    json_response(200, v, &[])
}

fn parse_body(body: &[u8]) -> Result<Value, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body)
        .or_else(|_| serde_saphyr::from_slice(body))
        .map_err(|e| format!("body is neither JSON nor YAML: {e}"))
}

/// Serve `/_standin/<rest>`. These requests are not recorded and get no latency or faults.
pub(crate) fn handle(inner: &Inner, method: &str, rest: &str, query: &[(String, String)], body: &[u8]) -> Resp {
    let body = match parse_body(body) {
        Ok(b) => b,
        Err(e) => return err(400, e),
    };
    match (method, rest.trim_end_matches('/')) {
        ("GET", "healthz") => ok(&json!("ok")),
        ("GET", "requests") => ok(&json!(*inner.requests.lock().expect("requests lock"))),
        ("DELETE", "requests") => {
            inner.requests.lock().expect("requests lock").clear();
            ok(&json!({"cleared": true}))
        }
        ("GET", "stats") => ok(&inner.stats()),
        ("GET", "faults") => ok(&json!(inner.faults.lock().expect("faults lock").list())),
        ("POST", "faults") => {
            let rules: Result<Vec<FaultRule>, _> = match body {
                Value::Array(_) => serde_json::from_value(body),
                other => serde_json::from_value(other).map(|r| vec![r]),
            };
            match rules {
                Ok(rules) => {
                    let mut f = inner.faults.lock().expect("faults lock");
                    let ids: Vec<u64> = rules.into_iter().map(|r| f.add(r)).collect();
                    ok(&json!({"ids": ids}))
                }
                Err(e) => err(400, format!("invalid fault rule: {e}")),
            }
        }
        ("DELETE", "faults") => {
            inner.faults.lock().expect("faults lock").clear();
            ok(&json!({"cleared": true}))
        }
        ("DELETE", p) if p.starts_with("faults/") => match p["faults/".len()..].parse::<u64>() {
            Ok(id) if inner.faults.lock().expect("faults lock").remove(id) => ok(&json!({"removed": id})),
            _ => err(404, format!("no fault rule {p}")),
        },
        ("PUT" | "POST", "latency") => match body["ms"].as_u64() {
            Some(ms) => {
                inner.latency_ms.store(ms, Ordering::Relaxed);
                ok(&json!({"latencyMs": ms}))
            }
            None => err(400, "expected {\"ms\": N}"),
        },
        ("POST", "compact") => ok(&json!({"compacted": inner.store.lock().expect("store lock").compact(false)})),
        ("PUT" | "POST", "watch-cache") => match body["enabled"].as_bool() {
            Some(on) => {
                inner.store.lock().expect("store lock").watch_cache = on;
                ok(&json!({"enabled": on}))
            }
            None => err(400, "expected {\"enabled\": true|false}"),
        },
        ("POST", "objects") => match inner.insert_many(body) {
            Ok(objs) => ok(&json!(objs)),
            Err(e) => err(400, e),
        },
        (m @ ("GET" | "DELETE" | "PATCH"), "objects") => {
            let (Some(av), Some(kind)) = (q(query, "apiVersion"), q(query, "kind")) else {
                return err(400, "apiVersion and kind query parameters are required");
            };
            let ns = q(query, "namespace");
            match (m, q(query, "name")) {
                ("GET", None) => ok(&json!(inner.list_obj(av, kind, ns))),
                ("GET", Some(name)) => match inner.get_obj(av, kind, ns, name) {
                    Some(o) => ok(&o),
                    None => err(404, format!("{kind} {name} not found")),
                },
                ("DELETE", Some(name)) => match inner.remove_obj(av, kind, ns, name) {
                    Some(o) => ok(&o),
                    None => err(404, format!("{kind} {name} not found")),
                },
                ("PATCH", Some(name)) => match inner.modify_obj(av, kind, ns, name, |o| patch::merge_patch(o, &body)) {
                    Ok(o) => ok(&o),
                    Err(e) => err(404, e),
                },
                _ => err(400, "name query parameter is required"),
            }
        }
        _ => err(404, format!("unknown admin endpoint {method} /_standin/{rest}")),
    }
}
