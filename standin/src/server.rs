//! HTTP plumbing: accept loop, per-request accounting, latency, fault injection, dispatch.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::{self, Target};
use crate::faults::{FaultAction, Faults, Probe};
use crate::status::{fault_status, ApiError};
use crate::store::Store;

/// One served API request, as recorded by the stand-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    /// Sequence number (1-based, never reset).
    pub seq: u64,
    /// HTTP method.
    pub method: String,
    /// URL path.
    pub path: String,
    /// Raw query string (empty if none).
    pub query: String,
    /// Kubernetes verb: get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: String,
    /// API group (`""` for core).
    pub group: String,
    /// Resource plural (`""` for discovery and unknown paths).
    pub resource: String,
    /// Subresource, e.g. `scale`.
    pub subresource: String,
    /// Namespace from the path.
    pub namespace: String,
    /// Object name from the path.
    pub name: String,
    /// HTTP status sent; `None` when the connection was dropped without a response.
    pub status: Option<u16>,
    /// Faults injected into this request (e.g. `status:503`, `latency:100ms`, `drop`).
    pub faults: Vec<String>,
    /// Microseconds from the request read to its answer (injected latency included): with
    /// the wall time of a run, how many requests were in flight on average.
    #[serde(default)]
    pub duration_us: u64,
}

/// Shared state behind a running stand-in.
pub(crate) struct Inner {
    pub store: Mutex<Store>,
    pub faults: Mutex<Faults>,
    pub requests: Mutex<Vec<RequestRecord>>,
    pub seq: AtomicU64,
    pub connections: AtomicU64,
    /// Requests being handled now (read, maybe delayed by injected latency, not yet answered).
    pub in_flight: AtomicU64,
    pub latency_ms: AtomicU64,
    pub served: crate::resources::Served,
    pub strict_updates: bool,
    pub addr: SocketAddr,
}

/// The error that makes hyper close the connection without writing a response.
#[derive(Debug)]
pub(crate) struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("standin: connection dropped by fault injection")
    }
}

impl std::error::Error for DropConnection {}

pub(crate) type Resp = Response<Full<Bytes>>;

/// A JSON response.
pub(crate) fn json_response(code: u16, body: &Value, extra: &[(&str, String)]) -> Resp {
    let mut b = Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .header("cache-control", "no-cache, private");
    for (k, v) in extra {
        b = b.header(*k, v);
    }
    b.body(Full::new(Bytes::from(serde_json::to_vec(body).unwrap_or_default())))
        .expect("valid response")
}

/// Accept connections until `shutdown` flips.
pub(crate) async fn serve(listener: TcpListener, inner: Arc<Inner>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(_) => continue,
            },
            _ = shutdown.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        inner.connections.fetch_add(1, Ordering::Relaxed);
        let inner = inner.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(inner.clone(), req));
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                _ = stop.changed() => {}
            }
        });
    }
}

async fn handle(inner: Arc<Inner>, req: Request<Incoming>) -> Result<Resp, DropConnection> {
    let started = std::time::Instant::now();
    // A request whose client has gone (killed, timed out) may still be carried out, until the
    // server notices the closed connection, as a real apiserver may commit a write whose client
    // is gone: tests that look at the world after a kill wait until none is in flight.
    let _in_flight = InFlight::enter(&inner.in_flight);
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let raw_query = req.uri().query().unwrap_or("").to_string();
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let content_type = header("content-type");
    let accept = header("accept");
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Err(DropConnection),
    };
    let query = api::parse_query(&raw_query);
    if let Some(rest) = path.strip_prefix("/_standin/") {
        return Ok(crate::admin::handle(&inner, &method, rest, &query, &body));
    }

    let r = api::route(&method, &path, &query, inner.served, &inner.addr.to_string());
    let decision = inner.faults.lock().expect("faults lock").decide(&Probe {
        verb: &r.verb,
        resource: &r.resource,
        subresource: &r.subresource,
        namespace: &r.namespace,
        name: &r.name,
    });
    if decision.compact {
        inner.store.lock().expect("store lock").compact(true);
    }
    let delay = inner.latency_ms.load(Ordering::Relaxed) + decision.latency_ms;
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let mut record = RequestRecord {
        seq: inner.seq.fetch_add(1, Ordering::Relaxed) + 1,
        method: method.clone(),
        path,
        query: raw_query,
        verb: r.verb.clone(),
        group: r.group.clone(),
        resource: r.resource.clone(),
        subresource: r.subresource.clone(),
        namespace: r.namespace.clone(),
        name: r.name.clone(),
        status: None,
        faults: decision.labels,
        duration_us: 0,
    };
    let push = |mut rec: RequestRecord| {
        rec.duration_us = started.elapsed().as_micros() as u64;
        inner.requests.lock().expect("requests lock").push(rec)
    };
    match decision.action {
        Some(FaultAction::Drop) => {
            push(record);
            return Err(DropConnection);
        }
        Some(FaultAction::Status {
            code,
            retry_after_seconds,
            message,
        }) => {
            let extra: Vec<(&str, String)> = retry_after_seconds
                .map(|s| ("retry-after", s.to_string()))
                .into_iter()
                .collect();
            record.status = Some(code);
            push(record);
            return Ok(json_response(
                code,
                &fault_status(code, message.as_deref(), retry_after_seconds),
                &extra,
            ));
        }
        _ => {}
    }
    let outcome = match &r.target {
        Target::Doc(d) => Ok((200, d.clone())),
        Target::Health => {
            record.status = Some(200);
            push(record);
            return Ok(Response::builder()
                .header("content-type", "text/plain")
                .body(Full::new(Bytes::from_static(b"ok")))
                .expect("valid response"));
        }
        Target::EmptyOpenApi => {
            record.status = Some(200);
            push(record);
            return Ok(Response::builder()
                .header(
                    "content-type",
                    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
                )
                .body(Full::new(Bytes::new()))
                .expect("valid response"));
        }
        Target::NotFound => Err(ApiError::path_not_found()),
        Target::Resource(def) => {
            let mut store = inner.store.lock().expect("store lock");
            api::handle_resource(&mut store, def, &r, &query, &content_type, &body, inner.strict_updates)
        }
    };
    let (code, mut body) = match outcome {
        Ok(ok) => ok,
        Err(e) => (e.code, e.to_status()),
    };
    if let (Target::Resource(def), true, "", true) = (
        &r.target,
        code == 200,
        r.subresource.as_str(),
        accept.contains("as=Table"),
    ) {
        if r.verb == "list" {
            body = api::to_table(def, &body);
        } else if r.verb == "get" {
            let list = serde_json::json!({"metadata": {}, "items": [body]});
            body = api::to_table(def, &list);
        }
    }
    if matches!(decision.action, Some(FaultAction::CommitThenDrop)) {
        push(record);
        return Err(DropConnection);
    }
    record.status = Some(code);
    push(record);
    Ok(json_response(code, &body, &[]))
}

/// Counts a request as in flight for as long as it lives (dropped on every return path).
struct InFlight<'a>(&'a AtomicU64);

impl<'a> InFlight<'a> {
    fn enter(counter: &'a AtomicU64) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        InFlight(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
