//! Kubernetes REST routing: path parsing into a request description and the handlers.

use serde_json::{json, Value};

use crate::patch::PatchType;
use crate::resources::{self, ResourceDef, Served};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{ListQuery, Store};

/// What a request path addresses.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// A static discovery document (or text for health endpoints).
    Doc(Value),
    /// Plain-text `ok`.
    Health,
    /// `/openapi/v2` as an empty protobuf document: kubectl's client-side validation then
    /// finds no schema for any kind and skips validation.
    EmptyOpenApi,
    /// A resource collection / object / subresource.
    Resource(&'static ResourceDef),
    /// Nothing there.
    NotFound,
}

/// A parsed request, in Kubernetes terms.
#[derive(Debug, Clone)]
pub(crate) struct ApiRequest {
    pub target: Target,
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
}

/// Split and percent-decode a query string (`+` is a space).
pub(crate) fn parse_query(q: &str) -> Vec<(String, String)> {
    fn dec(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => {
                    match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                        Ok(v) => {
                            out.push(v);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (dec(k), dec(v)),
            None => (dec(p), String::new()),
        })
        .collect()
}

fn q<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Parse method + path + query into an [`ApiRequest`].
pub(crate) fn route(method: &str, path: &str, query: &[(String, String)], on: Served, server_addr: &str) -> ApiRequest {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut r = ApiRequest {
        target: Target::NotFound,
        verb: match method {
            "GET" | "HEAD" => "get",
            "POST" => "create",
            "PUT" => "update",
            "PATCH" => "patch",
            "DELETE" => "delete",
            _ => "unknown",
        }
        .to_string(),
        group: String::new(),
        resource: String::new(),
        subresource: String::new(),
        namespace: String::new(),
        name: String::new(),
    };
    let (group, version, rest): (&str, &str, &[&str]) = match segs.as_slice() {
        ["version"] => {
            r.target = Target::Doc(resources::version_info());
            return r;
        }
        ["openapi", "v2"] => {
            r.target = Target::EmptyOpenApi;
            return r;
        }
        ["healthz" | "readyz" | "livez"] => {
            r.target = Target::Health;
            return r;
        }
        ["api"] => {
            r.target = Target::Doc(resources::api_versions(server_addr));
            return r;
        }
        ["apis"] => {
            r.target = Target::Doc(resources::api_group_list(on));
            return r;
        }
        ["apis", g] => {
            r.group = g.to_string();
            if let Some(d) = resources::api_group(g, on) {
                r.target = Target::Doc(d);
            }
            return r;
        }
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return r,
    };
    r.group = group.to_string();
    let find = |plural: &str| resources::find(group, version, plural, on);
    let (def, ns, name, sub) = match rest {
        [] => {
            if let Some(d) = resources::api_resource_list(group, version, on) {
                r.target = Target::Doc(d);
            }
            return r;
        }
        ["namespaces", ns, res, tail @ ..] if find(res).is_some_and(|d| d.namespaced) && tail.len() <= 2 => (
            find(res),
            *ns,
            tail.first().copied().unwrap_or(""),
            tail.get(1).copied().unwrap_or(""),
        ),
        [res] => (find(res), "", "", ""),
        [res, name] => (find(res).filter(|d| !d.namespaced), "", *name, ""),
        [res, name, sub] => (find(res).filter(|d| !d.namespaced), "", *name, *sub),
        _ => (None, "", "", ""),
    };
    r.namespace = ns.to_string();
    r.name = name.to_string();
    r.subresource = sub.to_string();
    if let Some(def) = def {
        r.resource = def.plural.to_string();
        r.target = Target::Resource(def);
    } else if let Some(res) = rest.first() {
        r.resource = if *res == "namespaces" && rest.len() > 2 {
            rest[2]
        } else {
            res
        }
        .to_string();
    }
    let watch = matches!(q(query, "watch"), Some("true" | "1"));
    r.verb = match (method, name.is_empty()) {
        ("GET" | "HEAD", true) if watch => "watch",
        ("GET" | "HEAD", true) => "list",
        ("DELETE", true) => "deletecollection",
        _ => &r.verb,
    }
    .to_string();
    r
}

/// A handled API call: status code and JSON body.
pub(crate) type Outcome = Result<(u16, Value), ApiError>;

fn body_json(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("couldn't decode the request body as JSON: {e}")))
}

/// Serve one resource request against the store (the store lock is held by the caller).
pub(crate) fn handle_resource(
    store: &mut Store,
    def: &'static ResourceDef,
    req: &ApiRequest,
    query: &[(String, String)],
    content_type: &str,
    body: &[u8],
    strict_updates: bool,
) -> Outcome {
    let ns = (!req.namespace.is_empty()).then_some(req.namespace.as_str());
    let name = req.name.as_str();
    let dry_run = q(query, "dryRun").is_some_and(|v| !v.is_empty());
    let sub = req.subresource.as_str();
    if !(sub.is_empty() || sub == "scale" && def.scale || sub == "status" && def.status) {
        return Err(ApiError::path_not_found());
    }
    let patch_type = || {
        PatchType::from_content_type(content_type)
            .filter(|pt| !(def.custom && *pt == PatchType::Strategic))
            .ok_or_else(|| {
            ApiError::new(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {content_type:?})"))
        })
    };
    let patch_body = |pt: PatchType| -> Result<Value, ApiError> {
        if pt == PatchType::Apply {
            serde_saphyr::from_slice(body).map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
        } else {
            body_json(body)
        }
    };
    match (req.verb.as_str(), sub) {
        ("list", _) => {
            let lq = ListQuery {
                labels: q(query, "labelSelector")
                    .map(LabelSelector::parse)
                    .transpose()
                    .map_err(ApiError::bad_request)?,
                fields: q(query, "fieldSelector")
                    .map(|s| FieldSelector::parse(s, field_labels(def)))
                    .transpose()
                    .map_err(ApiError::bad_request)?,
                limit: match q(query, "limit") {
                    None | Some("") => None,
                    Some(l) => Some(
                        l.parse()
                            .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
                    ),
                },
                continue_token: q(query, "continue").filter(|c| !c.is_empty()).map(str::to_string),
                resource_version: q(query, "resourceVersion").map(str::to_string),
                version_match: q(query, "resourceVersionMatch").map(str::to_string),
            };
            Ok((200, store.list(def, ns, &lq)?))
        }
        ("get", "" | "status") => Ok((200, store.get(def, ns, name)?)),
        ("get", _) => Ok((200, store.get_scale(def, ns, name)?)),
        ("create", "") if name.is_empty() && (ns.is_some() || !def.namespaced) => {
            Ok((201, store.create(def, ns, body_json(body)?, dry_run)?))
        }
        ("update", "") => Ok((
            200,
            store.update(def, ns, name, body_json(body)?, strict_updates, dry_run)?,
        )),
        ("update", "status") => Ok((200, store.update_status(def, ns, name, body_json(body)?, dry_run)?)),
        ("update", _) => Ok((200, store.update_scale(def, ns, name, &body_json(body)?, dry_run)?)),
        ("patch", s) => {
            let pt = patch_type()?;
            let pb = patch_body(pt)?;
            if s.is_empty() {
                let existed = store.get(def, ns, name).is_ok();
                let out = store.patch(def, ns, name, pt, &pb, dry_run)?;
                Ok((if existed { 200 } else { 201 }, out))
            } else if s == "status" {
                Ok((200, store.patch_status(def, ns, name, pt, &pb, dry_run)?))
            } else {
                Ok((200, store.patch_scale(def, ns, name, pt, &pb, dry_run)?))
            }
        }
        ("delete", "") => Ok((200, store.delete(def, ns, name, &body_json(body)?, dry_run)?)),
        ("watch", _) => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            "watch is not supported by the standin",
        )),
        (verb, _) => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({verb})"),
        )),
    }
}

/// Extra field-selector paths per kind (besides metadata.name / metadata.namespace).
fn field_labels(def: &ResourceDef) -> &'static [&'static str] {
    match def.kind {
        "Namespace" => &["status.phase"],
        "Event" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "reason",
            "type",
            "regarding.name",
            "regarding.kind",
        ],
        _ => &[],
    }
}

type Cell = fn(&Value) -> Value;

/// Render a list as a meta.k8s.io/v1 Table (what `kubectl get` asks for).
pub(crate) fn to_table(def: &ResourceDef, list: &Value) -> Value {
    let mut cols = vec![json!({"name": "Name", "type": "string", "format": "name", "description": "Name"})];
    let extra: Vec<(&str, Cell)> = match def.kind {
        "Deployment" => vec![
            ("Ready", |o| {
                json!(format!(
                    "{}/{}",
                    o["status"]["readyReplicas"].as_i64().unwrap_or(0),
                    o["spec"]["replicas"].as_i64().unwrap_or(0)
                ))
            }),
            ("Up-to-date", |o| {
                o["status"]["updatedReplicas"].as_i64().unwrap_or(0).into()
            }),
            ("Available", |o| {
                o["status"]["availableReplicas"].as_i64().unwrap_or(0).into()
            }),
        ],
        "StatefulSet" => vec![("Ready", |o| {
            json!(format!(
                "{}/{}",
                o["status"]["readyReplicas"].as_i64().unwrap_or(0),
                o["spec"]["replicas"].as_i64().unwrap_or(0)
            ))
        })],
        "CronJob" => vec![
            ("Schedule", |o| o["spec"]["schedule"].as_str().unwrap_or("").into()),
            ("Suspend", |o| {
                json!(if o["spec"]["suspend"].as_bool().unwrap_or(false) {
                    "True"
                } else {
                    "False"
                })
            }),
        ],
        "Namespace" => vec![("Status", |o| o["status"]["phase"].as_str().unwrap_or("Active").into())],
        _ => vec![],
    };
    for (n, _) in &extra {
        cols.push(json!({"name": n, "type": "string", "format": "", "description": n}));
    }
    cols.push(json!({"name": "Age", "type": "string", "format": "", "description": "Age"}));
    let now = chrono::Utc::now();
    let rows: Vec<Value> = list["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|o| {
                    let mut cells = vec![o["metadata"]["name"].clone()];
                    cells.extend(extra.iter().map(|(_, f)| f(o)));
                    let age = o["metadata"]["creationTimestamp"]
                        .as_str()
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                        .map(|t| human_age((now - t.with_timezone(&chrono::Utc)).num_seconds()))
                        .unwrap_or_else(|| "<unknown>".into());
                    cells.push(json!(age));
                    let meta = json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]});
                    json!({"cells": cells, "object": meta})
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list["metadata"],
        "columnDefinitions": cols,
        "rows": rows,
    })
}

fn human_age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}
