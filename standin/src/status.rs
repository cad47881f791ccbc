//! `metav1.Status` errors as the apiserver renders them.

use serde_json::{json, Value};

use crate::resources::ResourceDef;

/// An API error: becomes a `Status` body with the given HTTP code.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// Machine-readable reason (`NotFound`, `Conflict`, ...).
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// Optional `details` object.
    pub details: Option<Value>,
    /// `metadata.continue` of the Status (a 410 for an expired continue token offers one).
    pub list_continue: Option<String>,
}

impl ApiError {
    /// A bare error.
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason: reason.into(),
            message: message.into(),
            details: None,
            list_continue: None,
        }
    }

    /// With a continue token in the Status's `metadata`.
    pub fn with_list_continue(mut self, token: String) -> Self {
        self.list_continue = Some(token);
        self
    }

    fn with_details(mut self, def: &ResourceDef, name: &str) -> Self {
        let mut d = json!({"name": name, "kind": def.plural});
        if !def.group.is_empty() {
            d["group"] = json!(def.group);
        }
        self.details = Some(d);
        self
    }

    /// 404 for a missing object.
    pub fn not_found(def: &ResourceDef, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{} \"{name}\" not found", def.qualified())).with_details(def, name)
    }

    /// 409 for a create of an existing object.
    pub fn already_exists(def: &ResourceDef, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", def.qualified()),
        )
        .with_details(def, name)
    }

    /// 409 for a stale resourceVersion.
    pub fn conflict(def: &ResourceDef, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                def.qualified()
            ),
        )
        .with_details(def, name)
    }

    /// 403 for new content in a namespace that is being deleted, worded as the apiserver does.
    pub fn namespace_terminating(def: &ResourceDef, name: &str, namespace: &str) -> Self {
        Self::new(
            403,
            "Forbidden",
            format!(
                "{} \"{name}\" is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
                def.qualified()
            ),
        )
        .with_details(def, name)
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 422 Invalid.
    pub fn invalid(def: &ResourceDef, name: &str, message: impl Into<String>) -> Self {
        let message = format!("{} \"{name}\" is invalid: {}", def.kind, message.into());
        Self::new(422, "Invalid", message).with_details(def, name)
    }

    /// Generic 404 for a path that names nothing.
    pub fn path_not_found() -> Self {
        Self::new(404, "NotFound", "the server could not find the requested resource")
    }

    /// The `Status` JSON body.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        if let Some(c) = &self.list_continue {
            s["metadata"]["continue"] = json!(c);
        }
        s
    }
}

/// Status body for an injected fault with the given code.
pub fn fault_status(code: u16, message: Option<&str>, retry_after: Option<u64>) -> Value {
    let reason = match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        410 => "Expired",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    };
    let default = match code {
        409 => "Operation cannot be fulfilled: the object has been modified; please apply your changes to the latest version and try again".to_string(),
        429 => "Too many requests, please try again later.".to_string(),
        504 => "Timeout: request did not complete within the allotted timeout".to_string(),
        c => format!("injected fault: HTTP {c}"),
    };
    let mut e = ApiError::new(code, reason, message.map(str::to_string).unwrap_or(default));
    if let Some(secs) = retry_after {
        e.details = Some(json!({"retryAfterSeconds": secs}));
    }
    e.to_status()
}
