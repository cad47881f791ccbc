//! Running the scheduler binary as a subprocess (optionally signalled at an instant), and reading
//! back what it audited.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use namespace_scheduler::audit::AuditRecord;
use serde_json::Value;

use crate::common;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Signal {
    Term,
    Kill,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Term => "SIGTERM",
            Signal::Kill => "SIGKILL",
        }
    }
}

pub struct Outcome {
    /// Exit code, when the process exited by itself.
    pub code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
    /// Whether our signal was actually sent (the process may have finished first).
    pub signalled: bool,
    pub stdout: String,
    pub stderr: String,
    /// Epoch seconds at spawn and at exit.
    pub t0: f64,
    pub t1: f64,
    pub elapsed: Duration,
}

impl Outcome {
    /// The one JSON summary object printed on stdout, if any.
    pub fn summary(&self) -> Option<Value> {
        self.stdout
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str::<Value>(l.trim()).ok().filter(Value::is_object))
            .or_else(|| serde_json::from_str(self.stdout.trim()).ok())
    }

    /// (namespace, status) of each summary row.
    pub fn rows(&self) -> Vec<(String, String)> {
        let Some(s) = self.summary() else { return vec![] };
        s["namespaces"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                (
                    r["namespace"].as_str().unwrap_or_default().to_string(),
                    r["status"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// Audit records logged whole because they could not be written, as logged.
    pub fn logged_record_values(&self) -> Vec<Value> {
        self.stderr
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| serde_json::from_str(v["fields"]["record"].as_str()?).ok())
            .collect()
    }

    /// Audit records logged whole because they could not be written: (namespace, status).
    pub fn logged_records(&self) -> Vec<(String, String)> {
        self.logged_record_values()
            .iter()
            .filter_map(|r| {
                Some((
                    r["namespace_name"].as_str()?.to_string(),
                    r["status"].as_str().unwrap_or_default().to_string(),
                ))
            })
            .collect()
    }

    /// The summary row of `namespace`, if the run printed one.
    pub fn row(&self, namespace: &str) -> Option<Value> {
        let s = self.summary()?;
        s["namespaces"]
            .as_array()?
            .iter()
            .find(|r| r["namespace"] == namespace)
            .cloned()
    }

    pub fn describe(&self) -> String {
        match (self.code, self.signal) {
            (Some(c), _) => format!("exit {c}"),
            (None, Some(9)) => "killed by SIGKILL".into(),
            (None, Some(15)) => "killed by SIGTERM (before its handler was installed)".into(),
            (None, Some(s)) => format!("killed by signal {s}"),
            _ => "unknown end".into(),
        }
    }

    /// The tail of stderr, for violation reports.
    pub fn stderr_tail(&self, lines: usize) -> String {
        let all: Vec<&str> = self.stderr.lines().collect();
        let panic = all.iter().position(|l| l.contains("panicked at"));
        let from = panic.unwrap_or(all.len().saturating_sub(lines));
        all[from..(from + lines).min(all.len())].join("\n")
    }
}

fn epoch(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

fn drain(mut r: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

fn send(child: &mut Child, sig: Signal) {
    match sig {
        Signal::Kill => {
            let _ = child.kill();
        }
        Signal::Term => {
            let _ = std::process::Command::new("kill")
                .args(["-s", "TERM", &child.id().to_string()])
                .status();
        }
    }
}

/// Runs `cmd`, sending `signal` as soon as `fire(elapsed)` says so, if it is still running then.
/// Every run is bounded by `limit`: past it the process is SIGKILLed (a hung run is a finding).
pub fn run(
    mut cmd: std::process::Command,
    signal: Option<Signal>,
    mut fire: impl FnMut(Duration) -> bool,
    limit: Duration,
) -> Outcome {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::null());
    let start = Instant::now();
    let t0 = epoch(SystemTime::now());
    let mut child = cmd.spawn().expect("spawn the scheduler binary");
    let out = drain(child.stdout.take().expect("stdout"));
    let err = drain(child.stderr.take().expect("stderr"));
    let mut signalled = false;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        let now = start.elapsed();
        if let Some(sig) = signal {
            if !signalled && fire(now) {
                send(&mut child, sig);
                signalled = true;
            }
        }
        if now > limit {
            let _ = child.kill();
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_micros(200));
    };
    let elapsed = start.elapsed();
    Outcome {
        code: status.code(),
        signal: status.signal(),
        signalled,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        t0,
        t1: epoch(SystemTime::now()),
        elapsed,
    }
}

/// Audit records of `namespace` whose start lies in [from, to] (epoch seconds).
pub async fn audited(h: &common::DynamoHandle, table: &str, namespace: &str, from: f64, to: f64) -> Vec<AuditRecord> {
    let out = h
        .client
        .query()
        .table_name(table)
        .consistent_read(true)
        .key_condition_expression("namespace_name = :n AND timestamp_start BETWEEN :a AND :b")
        .expression_attribute_values(":n", AttributeValue::S(namespace.to_string()))
        .expression_attribute_values(":a", AttributeValue::N(format!("{from:.6}")))
        .expression_attribute_values(":b", AttributeValue::N(format!("{to:.6}")))
        .send()
        .await
        .unwrap_or_else(|e| panic!("query the audit table {table}: {e:?}"));
    out.items
        .unwrap_or_default()
        .iter()
        .map(|i| AuditRecord::from_item(i).unwrap_or_else(|e| panic!("audit item {i:?}: {e}")))
        .collect()
}
