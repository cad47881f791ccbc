//! Cluster-wide lists: answered by the apiserver's watch cache, decoded as the bytes arrive,
//! started again when a continue token expires (docs/reference.md §4, "Efficiency").
//!
//! - The first page asks for `resourceVersion=0` with `resourceVersionMatch=NotOlderThan`: the
//!   apiserver answers from its watch cache and reads nothing from etcd, and (v1.28) ignores
//!   `limit` there, so a kind is one request. The cache may be a moment behind etcd; every write
//!   carries the resourceVersion it was decided on ([`super::write`]), so a stale read ends in a
//!   409 and a re-read, never in a lost or wrong change.
//! - Where the apiserver pages anyway (its watch cache off for that kind), each later page
//!   carries only its continue token, as the apiserver requires.
//! - The body is decoded while it arrives, one item at a time ([`ListSplitter`]): a list of
//!   10,000 Deployments is never held as text.
//! - A continue token that expired (410 Gone: etcd compacted the revision the list started at,
//!   e.g. during a slow, throttled list) starts the list again from the first page, up to
//!   [`MAX_RESTARTS`] times; then the run fails (exit 1) before changing anything.

use std::future::Future;

use futures::AsyncBufReadExt;
use kube::api::ListParams;
use kube::core::{ApiResource, Request};
use serde::Deserialize;

use super::objects::{collection_path, Slim};
use super::retry::{self, Class, RetryPolicy};
use crate::error::{Error, Result};

/// Items per page where the apiserver pages (the watch cache ignores it).
pub const PAGE_SIZE: u32 = 500;
/// How many times an expired list is started again before the run gives up.
pub const MAX_RESTARTS: u32 = 3;

/// What a list hands its consumer.
#[derive(Debug)]
// Items are handed over one at a time and moved on at once: boxing them would cost an
// allocation per object for nothing.
#[allow(clippy::large_enum_variant)]
pub enum Listed {
    Item(Slim),
    /// Forget the items handed over so far: the list starts again from the first page.
    Restart,
}

/// Fetches pages of one list.
pub trait Pages {
    /// One page (the first when `token` is None): each item goes to `each` as it is decoded;
    /// returns the next page's continue token.
    fn page(
        &mut self,
        token: Option<&str>,
        each: &mut (dyn FnMut(Slim) + Send),
    ) -> impl Future<Output = std::result::Result<Option<String>, kube::Error>> + Send;
}

/// Every item of a list, through `each`. Transient failures of a page are retried within the
/// policy's attempts (a page cut short after handing over items starts the list again); an
/// expired continue token starts it again up to [`MAX_RESTARTS`] times.
pub async fn list_all<P: Pages>(
    pages: &mut P,
    policy: &RetryPolicy,
    what: &str,
    mut each: impl FnMut(Listed) + Send,
) -> Result<()> {
    let mut token: Option<String> = None;
    let (mut restarts, mut attempt) = (0u32, 0u32);
    loop {
        let mut handed = 0usize;
        let got = pages
            .page(token.as_deref(), &mut |o| {
                handed += 1;
                each(Listed::Item(o));
            })
            .await;
        let err = match got {
            Ok(Some(next)) => {
                token = Some(next);
                attempt = 0;
                continue;
            }
            Ok(None) => return Ok(()),
            Err(e) => e,
        };
        let class = retry::classify(&err);
        let hint = match &class {
            Class::Transient(hint) => *hint,
            _ => None,
        };
        let start_over = match class {
            Class::Expired => {
                restarts += 1;
                if restarts > MAX_RESTARTS {
                    return Err(Error::failed(format!(
                        "{what}: the list's continue token expired {restarts} times in a row (410 Gone: \
                         etcd compacted the revision the list started at); gave up before changing anything"
                    )));
                }
                tracing::warn!(
                    what,
                    restarts,
                    "continue token expired (410 Gone); listing again from the first page"
                );
                attempt = 0;
                true
            }
            Class::Transient(_) | Class::Unknown if attempt + 1 < policy.attempts => {
                let wait = policy.delay(attempt, hint);
                attempt += 1;
                tracing::warn!(error = %err, attempt, wait_ms = wait.as_millis() as u64, "{what}: retrying");
                tokio::time::sleep(wait).await;
                handed > 0
            }
            _ => return Err(err.into()),
        };
        if start_over {
            each(Listed::Restart);
            token = None;
        }
    }
}

/// The pages of one resource, cluster-wide, from the Kubernetes API.
pub struct ApiPages<'a> {
    pub client: &'a kube::Client,
    pub resource: &'a ApiResource,
    pub selector: Option<&'a str>,
}

impl Pages for ApiPages<'_> {
    async fn page(
        &mut self,
        token: Option<&str>,
        each: &mut (dyn FnMut(Slim) + Send),
    ) -> std::result::Result<Option<String>, kube::Error> {
        let uri = page_uri(self.resource, self.selector, PAGE_SIZE, token)?;
        let mut req = Request::new(collection_path(self.resource, None))
            .list(&ListParams::default())
            .map_err(kube::Error::BuildRequest)?;
        *req.uri_mut() = uri
            .parse()
            .map_err(|e| kube::Error::BuildRequest(kube::core::request::Error::Validation(format!("{uri}: {e}"))))?;
        let body = self.client.request_stream(req).await?;
        let mut body = std::pin::pin!(body);
        let mut split = ListSplitter::default();
        loop {
            let chunk = body.fill_buf().await.map_err(kube::Error::ReadEvents)?;
            if chunk.is_empty() {
                break;
            }
            let n = chunk.len();
            split
                .feed(chunk, &mut |item| {
                    each(serde_json::from_slice(item)?);
                    Ok(())
                })
                .map_err(kube::Error::SerdeError)?;
            body.as_mut().consume_unpin(n);
        }
        split.finish().map_err(kube::Error::SerdeError)
    }
}

/// The path and query of one page. The first asks the watch cache (`resourceVersion=0`,
/// added by hand: kube's ListParams drops it beside a limit); later ones carry only the token.
pub fn page_uri(
    resource: &ApiResource,
    selector: Option<&str>,
    limit: u32,
    token: Option<&str>,
) -> std::result::Result<String, kube::Error> {
    let mut lp = ListParams::default().limit(limit);
    if let Some(sel) = selector {
        lp = lp.labels(sel);
    }
    if let Some(t) = token {
        lp = lp.continue_token(t);
    }
    let req = Request::new(collection_path(resource, None))
        .list(&lp)
        .map_err(kube::Error::BuildRequest)?;
    let mut uri = req.uri().to_string();
    if token.is_none() {
        uri.push_str("&resourceVersion=0&resourceVersionMatch=NotOlderThan");
    }
    Ok(uri)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Capture {
    #[default]
    Nothing,
    Item,
    Metadata,
}

/// Splits the JSON of a `*List` as its bytes arrive: each element of the top-level `items`
/// array is handed over as its own slice; the top-level `metadata` is kept for its continue
/// token; nothing else is held.
#[derive(Debug, Default)]
pub struct ListSplitter {
    depth: u32,
    in_string: bool,
    escaped: bool,
    /// At depth 1 the next string is a key.
    want_key: bool,
    reading_key: bool,
    key: Vec<u8>,
    in_items: bool,
    capture: Capture,
    buf: Vec<u8>,
    started: bool,
    continue_token: Option<String>,
}

impl ListSplitter {
    pub fn feed(
        &mut self,
        bytes: &[u8],
        item: &mut dyn FnMut(&[u8]) -> serde_json::Result<()>,
    ) -> serde_json::Result<()> {
        for &b in bytes {
            if self.capture != Capture::Nothing {
                self.buf.push(b);
            }
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                    self.reading_key = false;
                    continue;
                }
                if self.reading_key {
                    self.key.push(b);
                }
                continue;
            }
            match b {
                b'"' => {
                    self.in_string = true;
                    if self.depth == 1 && self.want_key {
                        self.want_key = false;
                        self.reading_key = true;
                        self.key.clear();
                    }
                }
                b'{' | b'[' => {
                    if self.capture == Capture::Nothing {
                        if self.depth == 2 && self.in_items {
                            self.capture = Capture::Item;
                        } else if self.depth == 1 && b == b'{' && self.key == b"metadata" {
                            self.capture = Capture::Metadata;
                        }
                        if self.capture != Capture::Nothing {
                            self.buf.clear();
                            self.buf.push(b);
                        }
                    }
                    match self.depth {
                        0 => {
                            self.started = true;
                            self.want_key = b == b'{';
                        }
                        1 => self.in_items = b == b'[' && self.key == b"items",
                        _ => {}
                    }
                    self.depth += 1;
                }
                b'}' | b']' => {
                    if self.depth == 0 {
                        return Err(cut("a list body that closes more than it opened"));
                    }
                    self.depth -= 1;
                    match (self.depth, self.capture) {
                        (2, Capture::Item) => {
                            self.capture = Capture::Nothing;
                            item(&self.buf)?;
                        }
                        (1, Capture::Metadata) => {
                            self.capture = Capture::Nothing;
                            #[derive(Deserialize)]
                            struct ListMeta {
                                #[serde(default, rename = "continue")]
                                continue_: Option<String>,
                            }
                            let m: ListMeta = serde_json::from_slice(&self.buf)?;
                            self.continue_token = m.continue_.filter(|t| !t.is_empty());
                        }
                        (1, _) => self.in_items = false,
                        _ => {}
                    }
                    if self.capture == Capture::Nothing && self.buf.capacity() > 64 * 1024 {
                        // One huge item does not keep its buffer for the rest of the list.
                        self.buf = Vec::new();
                    }
                }
                b',' if self.depth == 1 => self.want_key = true,
                _ => {}
            }
        }
        Ok(())
    }

    /// At the end of the body: the next page's continue token, or an error if the body was
    /// cut short.
    pub fn finish(self) -> serde_json::Result<Option<String>> {
        if !self.started || self.depth != 0 || self.in_string {
            return Err(cut("a list body cut short"));
        }
        Ok(self.continue_token)
    }
}

fn cut(what: &str) -> serde_json::Error {
    <serde_json::Error as serde::de::Error>::custom(what)
}

#[cfg(test)]
#[path = "list_tests.rs"]
mod tests;
