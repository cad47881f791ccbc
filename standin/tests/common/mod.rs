#![allow(dead_code)]

use standin::Standin;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A kube client for the stand-in; `retry` toggles kube's built-in 429/503/504 retry layer.
pub fn client_with(server: &Standin, retry: bool) -> kube::Client {
    let mut config = kube::Config::new(server.url().parse().unwrap());
    config.default_retry = retry;
    config.read_timeout = Some(std::time::Duration::from_secs(10));
    kube::Client::try_from(config).unwrap()
}

/// A kube client without automatic retries, so tests see every status code.
pub fn client(server: &Standin) -> kube::Client {
    client_with(server, false)
}

/// Minimal HTTP/1.1 request over a fresh connection: returns (status, headers, body).
pub async fn http(base: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String, String) {
    http_ct(base, method, path, "application/json", body).await
}

/// Like [`http`] with an explicit Content-Type.
pub async fn http_ct(base: &str, method: &str, path: &str, ct: &str, body: Option<&str>) -> (u16, String, String) {
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, head.to_string(), body.to_string())
}

pub fn api_error(e: kube::Error) -> (u16, String, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason.clone(), s.message.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}
