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
    /// No usable kubeconfig or in-cluster configuration.
    #[error("kubernetes client configuration: {source}")]
    KubeConfig {
        #[source]
        source: Source,
    },
    /// A DynamoDB call failed (`source`: the SDK's error), or what it answered cannot be used.
    #[error("DynamoDB: {message}")]
    Dynamo {
        message: String,
        #[source]
        source: Option<Source>,
    },
    /// The run could not do what it had to (take the Lease, list the cluster …); the message
    /// says what, and `source` why.
    #[error("{message}")]
    Failed {
        message: String,
        #[source]
        source: Option<Source>,
    },
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// The underlying error a variant keeps (a kube, SDK or I/O error, or one of ours).
pub type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

impl Error {
    /// A DynamoDB failure described by us (nothing underneath).
    pub fn dynamo(message: impl Into<String>) -> Self {
        Error::Dynamo {
            message: message.into(),
            source: None,
        }
    }

    /// A DynamoDB failure described by `message`, caused by `source`.
    pub fn dynamo_from(message: impl Into<String>, source: impl Into<Source>) -> Self {
        Error::Dynamo {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// A DynamoDB failure that `source` describes by itself (a request that cannot be built).
    pub fn dynamo_source<E: std::error::Error + Send + Sync + 'static>(source: E) -> Self {
        Error::dynamo_from(source.to_string(), source)
    }

    pub fn failed(message: impl Into<String>) -> Self {
        Error::Failed {
            message: message.into(),
            source: None,
        }
    }

    pub fn failed_from(message: impl Into<String>, source: impl Into<Source>) -> Self {
        Error::Failed {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    pub fn kube_config<E: std::error::Error + Send + Sync + 'static>(source: E) -> Self {
        Error::KubeConfig {
            source: Box::new(source),
        }
    }

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

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    fn io(message: &str) -> std::io::Error {
        std::io::Error::other(message.to_string())
    }

    #[test]
    fn errors_say_what_happened_keep_what_caused_it_and_map_to_their_exit_code() {
        let cases: Vec<(Error, &str, Option<&str>, Exit)> = vec![
            (
                Error::dynamo_from("BatchGetItem permissions: timed out", io("read timed out")),
                "DynamoDB: BatchGetItem permissions: timed out",
                Some("read timed out"),
                Exit::Failed,
            ),
            (
                Error::dynamo("3 of 25 audit records could not be written"),
                "DynamoDB: 3 of 25 audit records could not be written",
                None,
                Exit::Failed,
            ),
            (
                Error::kube_config(io("no kubeconfig")),
                "kubernetes client configuration: no kubeconfig",
                Some("no kubeconfig"),
                Exit::Failed,
            ),
            (
                Error::failed_from("could not take the lease: 500", io("500")),
                "could not take the lease: 500",
                Some("500"),
                Exit::Failed,
            ),
            (
                Error::failed("the lease vanished"),
                "the lease vanished",
                None,
                Exit::Failed,
            ),
            (
                Error::config("SCALE_CONCURRENCY", "0", "must be at least 1"),
                "invalid SCALE_CONCURRENCY=\"0\": must be at least 1",
                None,
                Exit::Usage,
            ),
            (Error::Usage("protected".into()), "protected", None, Exit::Usage),
            (
                Error::Rejected("cluster_cap: 3 of 3".into()),
                "request rejected: cluster_cap: 3 of 3",
                None,
                Exit::Rejected,
            ),
        ];
        for (e, display, source, exit) in cases {
            assert_eq!(e.to_string(), display);
            assert_eq!(e.source().map(|s| s.to_string()).as_deref(), source, "{display}");
            assert_eq!(e.exit(), exit, "{display}");
        }
    }
}
