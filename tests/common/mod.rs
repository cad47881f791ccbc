//! Shared test support for everything that needs DynamoDB: a DynamoDB Local per test binary,
//! freshly named tables per test, read-back helpers, the scheduler binary with the right
//! environment, and a log capture for in-process tests.
//!
//! Where DynamoDB Local comes from, in order:
//! 1. `DYNAMODB_ENDPOINT_URL` when set (e.g. `scripts/dynamodb-local.sh start 8000`);
//! 2. otherwise it is started once per test binary from `.tools/dynamodb-local` (or
//!    `DYNAMODB_LOCAL_DIR`) on a free port, through a small `sh` watchdog that kills the java
//!    process as soon as the test binary is gone, so no java outlives `cargo test`;
//! 3. otherwise the test panics: run `scripts/install-dynamodb-local.sh`.
//!
//! Each test file uses a subset of these helpers.
#![allow(dead_code)]

pub mod control_plane;

use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use namespace_scheduler::audit::{AuditRecord, AuditStatus, OperationType, ResourceChange};
use namespace_scheduler::config::Config;

/// The scheduler binary built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_namespace-scheduler");

/// A client connected to DynamoDB Local, and its endpoint URL (for subprocesses).
#[derive(Debug, Clone)]
pub struct DynamoHandle {
    pub client: Client,
    pub endpoint: String,
}

/// Connects to the shared DynamoDB Local of this test binary (see the module docs). A new client
/// each call: every `#[tokio::test]` has its own runtime.
pub async fn dynamo() -> DynamoHandle {
    let endpoint = shared_endpoint().to_string();
    DynamoHandle {
        client: client_for(&endpoint).await,
        endpoint,
    }
}

/// A client built exactly as the binary builds it (`dynamo::client`), for `endpoint`.
pub async fn client_for(endpoint: &str) -> Client {
    namespace_scheduler::dynamo::client(&config_for(endpoint)).await
}

/// A default configuration pointing at `endpoint`.
pub fn config_for(endpoint: &str) -> Config {
    Config::from_vars([
        ("DYNAMODB_ENDPOINT_URL", endpoint),
        ("AWS_REGION", "us-east-1"),
        ("POD_NAMESPACE", "task-scheduler"),
    ])
    .expect("test configuration")
}

fn shared_endpoint() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| match std::env::var("DYNAMODB_ENDPOINT_URL") {
        Ok(url) if !url.trim().is_empty() => url.trim().to_string(),
        _ => {
            let local = LocalDynamo::start();
            let endpoint = local.endpoint.clone();
            // Lives as long as the test binary; the watchdog ends java when the binary exits.
            std::mem::forget(local);
            endpoint
        }
    })
}

/// A DynamoDB Local process of our own (in memory, `-sharedDb`). Dropping or `stop` ends it.
/// Tests that need to stop DynamoDB mid-run start a private one with this.
#[derive(Debug)]
pub struct LocalDynamo {
    pub endpoint: String,
    pub port: u16,
    watchdog: Option<Child>,
}

impl LocalDynamo {
    pub fn dir() -> PathBuf {
        std::env::var_os("DYNAMODB_LOCAL_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/dynamodb-local"))
    }

    /// Starts DynamoDB Local on a free port and waits (up to 60 s) until it accepts connections.
    pub fn start() -> LocalDynamo {
        let dir = Self::dir();
        if !dir.join("DynamoDBLocal.jar").is_file() {
            panic!(
                "DynamoDB Local not found in {}: run scripts/install-dynamodb-local.sh \
                 (or set DYNAMODB_ENDPOINT_URL to a running DynamoDB Local)",
                dir.display()
            );
        }
        let port = free_port();
        // The watchdog: starts java, then polls every 0.2 s whether the test binary (and java)
        // still exist; on the binary's exit, or on SIGTERM from `stop`, it ends java.
        let script = r#"
            java -Xmx512m -XX:+UseSerialGC -Djava.library.path=DynamoDBLocal_lib \
                -jar DynamoDBLocal.jar -inMemory -sharedDb -port "$2" > /dev/null 2>&1 &
            jp=$!
            trap 'kill $jp 2>/dev/null; wait $jp 2>/dev/null; exit 0' TERM INT HUP
            while kill -0 "$1" 2>/dev/null && kill -0 "$jp" 2>/dev/null; do sleep 0.2; done
            kill $jp 2>/dev/null
            wait $jp 2>/dev/null
        "#;
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("dynamodb-local-watchdog")
            .arg(std::process::id().to_string())
            .arg(port.to_string())
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start sh for DynamoDB Local: {e}"));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = watchdog.try_wait() {
                panic!("DynamoDB Local exited before listening ({status}); is Java 17 installed (`java -version`)?");
            }
            if Instant::now() > deadline {
                let _ = watchdog.kill();
                panic!("DynamoDB Local did not listen on port {port} within 60 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        LocalDynamo {
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            watchdog: Some(watchdog),
        }
    }

    /// Ends java and waits until the port no longer accepts connections.
    pub fn stop(&mut self) {
        let Some(mut watchdog) = self.watchdog.take() else {
            return;
        };
        let _ = Command::new("kill").arg(watchdog.id().to_string()).status();
        let _ = watchdog.wait();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline
            && TcpStream::connect_timeout(&([127, 0, 0, 1], self.port).into(), Duration::from_millis(100)).is_ok()
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for LocalDynamo {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port nothing listens on (bound, then released): connections to it are refused.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

/// An endpoint where nothing listens (connection refused at once).
pub fn closed_endpoint() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

/// A name no other test (or test binary) uses: `prefix-<pid>-<n>-<random>`.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}-{:04x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        fastrand::u16(..)
    )
}

/// Freshly named audit, permissions and windows tables, created with the schema of
/// infrastructure/dynamodb-tables.yaml, so tests share no state. Returns (audit, permissions);
/// the windows table is named after the permissions table ([`windows_table_for`]), so that every
/// test that has a permissions table has its fleet too, and [`scheduler_env`] points at it.
pub async fn unique_tables(handle: &DynamoHandle) -> (String, String) {
    let audit = unique_name("audit");
    let permissions = unique_name("permissions");
    let windows = windows_table_for(&permissions);
    let tables = namespace_scheduler::dynamo::TableNames {
        audit: &audit,
        permissions: &permissions,
        windows: &windows,
    };
    namespace_scheduler::dynamo::ensure_local_tables(&handle.client, tables)
        .await
        .expect("create local tables");
    (audit, permissions)
}

/// The windows table [`unique_tables`] creates beside a permissions table.
pub fn windows_table_for(permissions: &str) -> String {
    format!("{permissions}-windows")
}

/// Every item of a table (paginated Scan, consistent reads).
pub async fn scan_items(handle: &DynamoHandle, table: &str) -> Vec<HashMap<String, AttributeValue>> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = handle
            .client
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap_or_else(|e| panic!("scan {table}: {e:?}"));
        items.extend(out.items.unwrap_or_default());
        start = out.last_evaluated_key;
        if start.is_none() {
            return items;
        }
    }
}

/// Every audit record of a table, parsed, sorted by (timestamp_start, namespace).
pub async fn audit_records(handle: &DynamoHandle, table: &str) -> Vec<AuditRecord> {
    let mut records: Vec<AuditRecord> = scan_items(handle, table)
        .await
        .iter()
        .map(|item| AuditRecord::from_item(item).unwrap_or_else(|e| panic!("audit item {item:?}: {e}")))
        .collect();
    records.sort_by(|a, b| {
        a.timestamp_start
            .total_cmp(&b.timestamp_start)
            .then_with(|| a.namespace_name.cmp(&b.namespace_name))
    });
    records
}

/// A complete audit record with every optional field set, for tests that write records.
pub fn sample_record(namespace: &str, timestamp_start: f64, operation: OperationType) -> AuditRecord {
    AuditRecord {
        namespace_name: namespace.to_string(),
        timestamp_start,
        timestamp_end: timestamp_start + 1.25,
        duration_ms: 1250,
        operation_type: operation,
        cost_center: "IT-DEVELOPMENT".to_string(),
        cluster_name: "test-cluster".to_string(),
        requested_by: "alice@example.com".to_string(),
        status: AuditStatus::Completed,
        run_id: "20260101T000000Z-abcdef".to_string(),
        resources: vec![
            ResourceChange {
                kind: "Deployment".to_string(),
                name: "api".to_string(),
                from: "0".to_string(),
                to: "3".to_string(),
                skipped: None,
                cpu_millicores: Some(250),
                memory_bytes: Some(512 * 1024 * 1024),
                found: None,
                reached: None,
            },
            ResourceChange {
                kind: "CronJob".to_string(),
                name: "report".to_string(),
                from: "suspend=true".to_string(),
                to: "suspend=false".to_string(),
                skipped: Some("admission webhook \"freeze\" denied the request (403)".to_string()),
                cpu_millicores: None,
                memory_bytes: None,
                found: None,
                reached: None,
            },
        ],
        error: Some("none really".to_string()),
        active_until: Some("2026-01-01T22:00:00-05:00".to_string()),
        closed_by: None,
    }
}

/// The environment the scheduler binary needs to use this DynamoDB Local and these tables.
pub fn scheduler_env(handle: &DynamoHandle, audit: &str, permissions: &str) -> Vec<(String, String)> {
    let windows = windows_table_for(permissions);
    [
        ("DYNAMODB_ENDPOINT_URL", handle.endpoint.as_str()),
        ("DYNAMODB_TABLE_NAME", audit),
        ("PERMISSIONS_TABLE_NAME", permissions),
        ("WINDOWS_TABLE_NAME", windows.as_str()),
        ("AWS_ACCESS_KEY_ID", "local"),
        ("AWS_SECRET_ACCESS_KEY", "local"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("POD_NAMESPACE", "task-scheduler"),
        ("LOG_FORMAT", "json"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The scheduler binary with [`scheduler_env`] set and the variables that could change its
/// behaviour from the developer's shell removed. Add arguments and `.output()`.
pub fn scheduler(handle: &DynamoHandle, audit: &str, permissions: &str) -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("NS_SCHEDULER_")
            || k.starts_with("BUSINESS_")
            || k.starts_with("AWS_")
            || matches!(
                k.as_str(),
                "EKS_CLUSTER_NAME" | "NAMESPACE_SELECTOR" | "PROTECTED_NAMESPACES" | "RUST_LOG" | "LOG_LEVEL"
            )
        {
            cmd.env_remove(k);
        }
    }
    cmd.envs(scheduler_env(handle, audit, permissions));
    cmd.stdin(Stdio::null());
    cmd
}

/// Runs a command, returning (exit code, stdout, stderr).
pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().expect("run the scheduler binary");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Captures what `tracing` logs on this thread while the guard lives (for in-process tests on a
/// current-thread runtime, the `#[tokio::test]` default). Read the text with `LogCapture::text`.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    pub fn install() -> (LogCapture, tracing::subscriber::DefaultGuard) {
        let capture = LogCapture::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(capture.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        (capture, guard)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// An HTTP proxy in front of DynamoDB Local that answers 500 InternalServerError to every request
/// whose body contains `marker` (as often as it is retried) and forwards the rest: a table that
/// fails one batch for good while the others go through. One request per connection.
pub struct FailingProxy {
    pub endpoint: String,
    /// Requests answered with the injected error so far.
    pub failed: Arc<AtomicU32>,
}

impl FailingProxy {
    pub async fn start(upstream: &str, marker: &str) -> FailingProxy {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_start_matches("http://").to_string();
        let (marker, failed) = (marker.to_string(), Arc::new(AtomicU32::new(0)));
        let counter = failed.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let (upstream, marker, counter) = (upstream.clone(), marker.clone(), counter.clone());
                tokio::spawn(async move {
                    let Some(request) = read_http_message(&mut client).await else {
                        return;
                    };
                    let reply = if request.windows(marker.len()).any(|w| w == marker.as_bytes()) {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"injected by the test"}"#;
                        format!(
                            "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .into_bytes()
                    } else {
                        let Ok(mut up) = tokio::net::TcpStream::connect(&upstream).await else {
                            return;
                        };
                        if up.write_all(&request).await.is_err() {
                            return;
                        }
                        let Some(response) = read_http_message(&mut up).await else {
                            return;
                        };
                        // The client must not reuse this connection: one request each.
                        let split = response.windows(2).position(|w| w == b"\r\n").unwrap_or(0);
                        [&response[..split + 2], b"Connection: close\r\n", &response[split + 2..]].concat()
                    };
                    let _ = client.write_all(&reply).await;
                    let _ = client.shutdown().await;
                    let _ = client.read(&mut [0u8; 1]).await;
                });
            }
        });
        FailingProxy { endpoint, failed }
    }
}

/// One HTTP/1.1 message with a Content-Length body (all DynamoDB speaks), headers included.
async fn read_http_message(stream: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                buf.truncate(end + 4 + length);
                return Some(buf);
            }
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Writes audit records to their table the way the binary does (one stream, batched and
/// retried): `Ok(written)`, or the error naming how many were not written.
pub async fn write_records(
    writer: &namespace_scheduler::audit::AuditWriter,
    records: &[namespace_scheduler::audit::AuditRecord],
) -> namespace_scheduler::Result<usize> {
    let mut stream = writer.clone().stream();
    for r in records {
        stream.send(r.clone());
    }
    stream.finish().await
}
