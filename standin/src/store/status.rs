//! The status subresource (ActivationRequests): writes to the object keep its `status`, writes
//! to `/status` change only `status` and never the generation.

use serde_json::Value;

use super::{key, meta_str, Store};
use crate::patch::{self, PatchType};
use crate::resources::ResourceDef;
use crate::status::ApiError;

impl Store {
    /// PUT .../status: only `status` changes (optimistic concurrency on resourceVersion).
    pub fn update_status(
        &mut self,
        def: &'static ResourceDef,
        ns: Option<&str>,
        name: &str,
        obj: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let current = self.get(def, ns, name)?;
        match meta_str(&obj, "resourceVersion") {
            Some(rv) if Some(rv) != meta_str(&current, "resourceVersion") => return Err(ApiError::conflict(def, name)),
            None if def.custom => {
                return Err(ApiError::invalid(
                    def,
                    name,
                    "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update",
                ))
            }
            _ => {}
        }
        let mut new = current.clone();
        match obj.get("status") {
            Some(st) if !st.is_null() => new["status"] = st.clone(),
            _ => {
                new.as_object_mut().expect("object").remove("status");
            }
        }
        Ok(self.commit(def, key(def, ns, name), Some(&current), new, dry_run))
    }

    /// PATCH .../status: the patch applies to the object; only its `status` is kept.
    pub fn patch_status(
        &mut self,
        def: &'static ResourceDef,
        ns: Option<&str>,
        name: &str,
        kind: PatchType,
        body: &Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let current = self.get(def, ns, name)?;
        let patched = patch::apply(&current, body, kind).map_err(|m| ApiError::new(422, "Invalid", m))?;
        if meta_str(&patched, "resourceVersion").is_some()
            && meta_str(&patched, "resourceVersion") != meta_str(&current, "resourceVersion")
        {
            return Err(ApiError::conflict(def, name));
        }
        self.update_status(def, ns, name, patched, dry_run)
    }
}

/// A write to an object with the status subresource keeps the stored `status`.
pub(super) fn keep_status(def: &ResourceDef, current: &Value, obj: &mut Value) {
    if !def.status {
        return;
    }
    match current.get("status") {
        Some(st) => obj["status"] = st.clone(),
        None => {
            if let Some(o) = obj.as_object_mut() {
                o.remove("status");
            }
        }
    }
}
