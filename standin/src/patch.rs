//! Patch application: JSON merge patch (RFC 7386), a strategic-merge approximation, and
//! JSON patch (RFC 6902).

use serde_json::Value;

/// The patch flavours the stand-in understands, keyed by request `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json`
    Merge,
    /// `application/strategic-merge-patch+json`
    Strategic,
    /// `application/json-patch+json`
    Json,
    /// `application/apply-patch+yaml` (server-side apply, approximated as a merge patch)
    Apply,
}

impl PatchType {
    /// Map a Content-Type header value to a patch type.
    pub fn from_content_type(ct: &str) -> Option<Self> {
        match ct.split(';').next().unwrap_or("").trim() {
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/json-patch+json" => Some(Self::Json),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(Self::Apply),
            _ => None,
        }
    }
}

/// Apply `patch` of the given type to `target`, returning the new document.
pub fn apply(target: &Value, patch: &Value, kind: PatchType) -> Result<Value, String> {
    let mut out = target.clone();
    match kind {
        PatchType::Merge | PatchType::Apply => merge_patch(&mut out, patch),
        PatchType::Strategic => strategic_merge(&mut out, patch),
        PatchType::Json => return json_patch(target, patch),
    }
    Ok(out)
}

/// RFC 7386 JSON merge patch: objects merge recursively, `null` deletes, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    let t = target.as_object_mut().expect("object");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// Strategic merge patch, simplified: like a merge patch, except that lists of objects that all
/// carry a `name` key are merged element-wise by name, and `$`-directives are dropped.
pub fn strategic_merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Default::default());
            }
            let t = target.as_object_mut().expect("object");
            for (k, v) in p {
                if k.starts_with('$') {
                    continue;
                }
                if v.is_null() {
                    t.remove(k);
                } else {
                    strategic_merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        Value::Array(items) if named_list(items) && target.as_array().is_some_and(|a| named_list(a)) => {
            let t = target.as_array_mut().expect("array");
            for item in items {
                let name = &item["name"];
                let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                match t.iter().position(|e| &e["name"] == name) {
                    Some(i) if delete => {
                        t.remove(i);
                    }
                    Some(i) => strategic_merge(&mut t[i], item),
                    None if delete => {}
                    None => {
                        let mut fresh = Value::Null;
                        strategic_merge(&mut fresh, item);
                        t.push(fresh);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn named_list(items: &[Value]) -> bool {
    !items.is_empty() && items.iter().all(|i| i.get("name").is_some_and(Value::is_string))
}

fn parse_pointer(p: &str) -> Result<Vec<String>, String> {
    if p.is_empty() {
        return Ok(vec![]);
    }
    if !p.starts_with('/') {
        return Err(format!("invalid JSON pointer {p:?}"));
    }
    Ok(p[1..]
        .split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn parent_mut<'a>(doc: &'a mut Value, path: &[String]) -> Result<&'a mut Value, String> {
    let mut cur = doc;
    for seg in path {
        cur = match cur {
            Value::Object(m) => m
                .get_mut(seg)
                .ok_or_else(|| format!("path segment {seg:?} not found"))?,
            Value::Array(a) => {
                let i: usize = seg.parse().map_err(|_| format!("bad array index {seg:?}"))?;
                a.get_mut(i).ok_or_else(|| format!("array index {i} out of range"))?
            }
            _ => return Err(format!("cannot descend into scalar at {seg:?}")),
        };
    }
    Ok(cur)
}

fn get_at(doc: &Value, path: &[String]) -> Result<Value, String> {
    let mut d = doc.clone();
    Ok(parent_mut(&mut d, path)?.clone())
}

fn remove_at(doc: &mut Value, path: &[String]) -> Result<Value, String> {
    let (last, parent) = path.split_last().ok_or("cannot remove the root")?;
    match parent_mut(doc, parent)? {
        Value::Object(m) => m.remove(last).ok_or_else(|| format!("key {last:?} not found")),
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| format!("bad array index {last:?}"))?;
            if i >= a.len() {
                return Err(format!("array index {i} out of range"));
            }
            Ok(a.remove(i))
        }
        _ => Err("cannot remove from a scalar".into()),
    }
}

fn add_at(doc: &mut Value, path: &[String], value: Value, replace: bool) -> Result<(), String> {
    let Some((last, parent)) = path.split_last() else {
        *doc = value;
        return Ok(());
    };
    match parent_mut(doc, parent)? {
        Value::Object(m) => {
            if replace && !m.contains_key(last) {
                return Err(format!("replace: key {last:?} not found"));
            }
            m.insert(last.clone(), value);
        }
        Value::Array(a) => {
            if last == "-" && !replace {
                a.push(value);
            } else {
                let i: usize = last.parse().map_err(|_| format!("bad array index {last:?}"))?;
                if replace {
                    *a.get_mut(i).ok_or_else(|| format!("array index {i} out of range"))? = value;
                } else if i <= a.len() {
                    a.insert(i, value);
                } else {
                    return Err(format!("array index {i} out of range"));
                }
            }
        }
        _ => return Err("cannot add into a scalar".into()),
    }
    Ok(())
}

/// RFC 6902 JSON patch (add, remove, replace, move, copy, test).
pub fn json_patch(target: &Value, ops: &Value) -> Result<Value, String> {
    let ops = ops.as_array().ok_or("a JSON patch must be an array of operations")?;
    let mut doc = target.clone();
    for op in ops {
        let name = op.get("op").and_then(Value::as_str).ok_or("operation without \"op\"")?;
        let path = parse_pointer(
            op.get("path")
                .and_then(Value::as_str)
                .ok_or("operation without \"path\"")?,
        )?;
        let value = || op.get("value").cloned().ok_or(format!("{name} without \"value\""));
        let from = || parse_pointer(op.get("from").and_then(Value::as_str).unwrap_or_default());
        match name {
            "add" => add_at(&mut doc, &path, value()?, false)?,
            "replace" => add_at(&mut doc, &path, value()?, true)?,
            "remove" => {
                remove_at(&mut doc, &path)?;
            }
            "test" => {
                if get_at(&doc, &path)? != value()? {
                    return Err(format!("test operation failed at {:?}", op["path"]));
                }
            }
            "move" => {
                let v = remove_at(&mut doc, &from()?)?;
                add_at(&mut doc, &path, v, false)?;
            }
            "copy" => {
                let v = get_at(&doc, &from()?)?;
                add_at(&mut doc, &path, v, false)?;
            }
            other => return Err(format!("unknown JSON patch operation {other:?}")),
        }
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_rfc7386() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        merge_patch(&mut t, &json!({"a": "z", "c": {"f": null}, "l": [3]}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}, "l": [3]}));
    }

    #[test]
    fn strategic_merges_named_lists() {
        let mut t = json!({"c": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}], "$x": 1});
        strategic_merge(
            &mut t,
            &json!({"c": [{"name": "b", "image": "z"}], "$setElementOrder/c": []}),
        );
        assert_eq!(t["c"][1]["image"], "z");
        assert_eq!(t["c"][0]["image"], "x");
    }

    #[test]
    fn json_patch_ops() {
        let t = json!({"metadata": {"annotations": {"a/b": "1"}}, "l": [1]});
        let out = json_patch(
            &t,
            &json!([
                {"op": "test", "path": "/metadata/annotations/a~1b", "value": "1"},
                {"op": "replace", "path": "/metadata/annotations/a~1b", "value": "2"},
                {"op": "add", "path": "/l/-", "value": 2},
                {"op": "add", "path": "/x", "value": {"y": 1}},
                {"op": "remove", "path": "/l/0"}
            ]),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"annotations": {"a/b": "2"}}, "l": [2], "x": {"y": 1}})
        );
        assert!(json_patch(&t, &json!([{"op": "test", "path": "/l/0", "value": 9}])).is_err());
        assert!(json_patch(&t, &json!([{"op": "remove", "path": "/nope"}])).is_err());
    }
}
