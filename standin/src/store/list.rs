//! List calls: selectors, pagination, the watch cache's answer to `resourceVersion=0`, and the
//! apiserver's 410 for a continue token older than etcd's compaction.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::{Key, Store};
use crate::resources::ResourceDef;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::token;

/// Parameters of a list call.
#[derive(Debug, Default, Clone)]
pub struct ListQuery {
    /// Parsed `labelSelector`.
    pub labels: Option<LabelSelector>,
    /// Parsed `fieldSelector`.
    pub fields: Option<FieldSelector>,
    /// `limit` (0 or absent = no limit).
    pub limit: Option<usize>,
    /// `continue` token from a previous page.
    pub continue_token: Option<String>,
    /// `resourceVersion` (`"0"`: any version, served from the watch cache).
    pub resource_version: Option<String>,
    /// `resourceVersionMatch` (`NotOlderThan`, `Exact`).
    pub version_match: Option<String>,
}

/// What kube-apiserver v1.28 answers for a continue token older than etcd's compaction.
const CONTINUE_EXPIRED: &str = "The provided continue parameter is too old to display a consistent list result. \
You can start a new list without the continue parameter, or use the continue token in this response to retrieve \
the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that \
were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

impl Store {
    /// List (optionally within one namespace) with selectors and pagination, validated and
    /// answered as kube-apiserver v1.28 does (see [`Store::check_list_options`]).
    pub fn list(&self, def: &ResourceDef, ns: Option<&str>, q: &ListQuery) -> Result<Value, ApiError> {
        self.check_list_options(q)?;
        let (after, list_rv) = match &q.continue_token {
            Some(tok) => {
                let bad = || {
                    ApiError::bad_request("invalid continue token: continue key is not valid: malformed continue token")
                };
                let raw = token::decode(tok).ok_or_else(bad)?;
                let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
                let ns = v["ns"].as_str().ok_or_else(bad)?.to_string();
                let name = v["name"].as_str().ok_or_else(bad)?.to_string();
                // rv -1 (handed out with a 410) continues at the latest revision.
                let rv = v["rv"].as_u64().unwrap_or(self.rv);
                if rv < self.compacted {
                    let resume = json!({"ns": ns, "name": name, "rv": -1});
                    return Err(ApiError::new(410, "Expired", CONTINUE_EXPIRED)
                        .with_list_continue(token::encode(resume.to_string().as_bytes())));
                }
                (Some((ns, name)), rv)
            }
            None => (None, self.rv),
        };
        let empty = BTreeMap::new();
        let matching = self
            .table(def)
            .unwrap_or(&empty)
            .iter()
            .filter(|(k, _)| ns.is_none_or(|ns| k.0 == ns))
            .filter(|(k, _)| after.as_ref().is_none_or(|a| *k > a))
            .filter(|(_, v)| {
                q.labels
                    .as_ref()
                    .is_none_or(|s| s.matches(v["metadata"]["labels"].as_object()))
            })
            .filter(|(_, v)| q.fields.as_ref().is_none_or(|s| s.matches(v)));
        // resourceVersion=0 is served by the watch cache, which ignores limit: one whole page.
        let from_cache = self.watch_cache && q.continue_token.is_none() && q.resource_version.as_deref() == Some("0");
        let limit = match q.limit.filter(|l| *l > 0) {
            Some(l) if !from_cache => l,
            _ => usize::MAX,
        };
        let mut items = Vec::new();
        let mut remaining = 0usize;
        let mut last: Option<&Key> = None;
        for (k, v) in matching {
            if items.len() < limit {
                items.push(v.clone());
                last = Some(k);
            } else {
                remaining += 1;
            }
        }
        let mut meta = Map::new();
        meta.insert("resourceVersion".into(), json!(list_rv.to_string()));
        if remaining > 0 {
            let last = last.expect("a page before the remainder");
            let tok = json!({"ns": last.0, "name": last.1, "rv": list_rv});
            meta.insert("continue".into(), json!(token::encode(tok.to_string().as_bytes())));
            if q.labels.is_none() && q.fields.is_none() {
                meta.insert("remainingItemCount".into(), json!(remaining));
            }
        }
        Ok(json!({
            "kind": format!("{}List", def.kind),
            "apiVersion": def.api_version(),
            "metadata": meta,
            "items": items,
        }))
    }

    /// The apiserver's checks of list options: 422 for a `resourceVersionMatch` it cannot
    /// honour, 400 for a resourceVersion beside a continue token, 410 for an `Exact` version
    /// older than the compaction (the stand-in keeps no history: other versions are served
    /// from the current state, which is never older than asked).
    fn check_list_options(&self, q: &ListQuery) -> Result<(), ApiError> {
        let rv = q.resource_version.as_deref().filter(|v| !v.is_empty());
        let invalid = |detail: String| {
            ApiError::new(
                422,
                "Invalid",
                format!("ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: {detail}"),
            )
        };
        if let Some(m) = q.version_match.as_deref().filter(|m| !m.is_empty()) {
            if rv.is_none() {
                return Err(invalid(
                    "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided".into(),
                ));
            }
            if q.continue_token.is_some() {
                return Err(invalid(
                    "Forbidden: resourceVersionMatch is forbidden when continue is provided".into(),
                ));
            }
            if m != "NotOlderThan" && m != "Exact" {
                return Err(invalid(format!(
                    "Unsupported value: \"{m}\": supported values: \"Exact\", \"NotOlderThan\", \"\""
                )));
            }
            if m == "Exact" && rv == Some("0") {
                return Err(invalid(
                    "Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"".into(),
                ));
            }
        }
        match rv {
            Some(v) if q.continue_token.is_some() && v != "0" => Err(ApiError::bad_request(
                "specifying resource version is not allowed when using continue",
            )),
            Some(v) if v != "0" => match v.parse::<u64>() {
                Err(_) => Err(ApiError::bad_request(format!("invalid resource version \"{v}\""))),
                Ok(n) if q.version_match.as_deref() == Some("Exact") && n < self.compacted => Err(ApiError::new(
                    410,
                    "Expired",
                    "The resourceVersion for the provided list is too old.",
                )),
                Ok(_) => Ok(()),
            },
            _ => Ok(()),
        }
    }
}
