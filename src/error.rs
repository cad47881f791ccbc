//! One error type for the whole crate, and the exit code each kind of failure maps to (docs/reference.md §1).

use std::process::ExitCode;

/// Exit codes of docs/reference.md §1, in one place so every command agrees on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done, including "nothing to do".
    Ok = 0,
    /// Some namespace failed (and was rolled back), or the audit could not be written.
    Failed = 1,
    /// Bad configuration or usage: nothing was touched.
    Usage = 2,
    /// Another run holds the lock: nothing was touched.
    Locked = 3,
    /// The request was rejected (authorization or cap).
    Rejected = 4,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration variable (or flag) has a bad value. Always names the variable and the value.
    #[error("invalid {var}={value:?}: {reason}")]
    Config { var: String, value: String, reason: String },
    /// The command line asks for something that cannot be done (e.g. a protected namespace).
    #[error("{0}")]
    Usage(String),
    /// A holiday calendar cannot answer for the requested year or country.
    #[error("holiday calendar: {0}")]
    Calendar(String),
    /// Another run holds the Lease.
    #[error("another run holds the lock (lease {lease} held by {holder} until {until})")]
    Locked {
        lease: String,
        holder: String,
        until: String,
    },
    /// A request was rejected by an authorization rule or a cap; names the rule and the numbers.
    #[error("request rejected: {0}")]
    Rejected(String),
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("kubernetes client configuration: {0}")]
    KubeConfig(String),
    #[error("DynamoDB: {0}")]
    Dynamo(String),
    /// Some namespaces failed; the summary says which.
    #[error("{0}")]
    Failed(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl Error {
    pub fn config(var: &str, value: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Config {
            var: var.to_string(),
            value: value.into(),
            reason: reason.into(),
        }
    }

    pub fn exit(&self) -> Exit {
        match self {
            Error::Config { .. } | Error::Usage(_) | Error::Calendar(_) => Exit::Usage,
            Error::Locked { .. } => Exit::Locked,
            Error::Rejected(_) => Exit::Rejected,
            _ => Exit::Failed,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
