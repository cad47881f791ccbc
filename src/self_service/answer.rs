//! Writing answers into ActivationRequests' status, through the one conditional write path
//! (`scaling::write`): each patch carries the resourceVersion last seen; on a 409 the request is
//! read again, and if its generation changed meanwhile (the team edited it: a new request)
//! nothing is written — it is pending again, for the next run.

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};

use super::judge::{Answer, Grant, Reason};
use super::ActivationRequest;
use crate::engine::AfterApply;
use crate::scaling::apply::{Applier, NamespaceOutcome, NsStatus};
use crate::scaling::objects::{self, Slim};
use crate::scaling::plan::NamespacePlan;
use crate::scaling::retry::RetryPolicy;
use crate::scaling::write::{self, Next, Start, Written};
use crate::summary::{Row, RowStatus};

/// How an answer ended when it was not written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unwritten {
    /// The request is gone, or changed since it was judged: the next run judges it again.
    Moved,
    /// Still failing after the retries, or refused: the request stays as it was.
    Failed(String),
}

/// Writes `answer` into `request`'s status (or finds it already there).
pub async fn write(
    client: &kube::Client,
    policy: &RetryPolicy,
    request: &ActivationRequest,
    answer: &Answer,
) -> Result<(), Unwritten> {
    let (ns, name) = (request.namespace.as_str(), request.name.as_str());
    let what = format!("ActivationRequest {ns}/{name} status");
    let first = answer.patch(request.resource_version.as_deref());
    let written = write::conditional(
        policy,
        &what,
        Start::With(Next::Send(first)),
        |patch: serde_json::Value| async move {
            objects::merge_patch_status(client, &super::ACTIVATION_REQUEST, Some(ns), name, &patch).await
        },
        || async move { write::found(objects::get(client, &super::ACTIVATION_REQUEST, Some(ns), name).await) },
        |fresh: Option<Slim>| {
            let Some(o) = fresh else { return Next::Nothing };
            let now = ActivationRequest::from_slim(o.clone());
            if now.generation != request.generation {
                return Next::Nothing;
            }
            if answer.is_held_by(&now) {
                return Next::Settled(o);
            }
            Next::Send(answer.patch(now.resource_version.as_deref()))
        },
    )
    .await;
    match written {
        Ok(Written::Done(_)) => Ok(()),
        Ok(Written::Nothing) => Err(Unwritten::Moved),
        Ok(Written::Refused(message)) => Err(Unwritten::Failed(format!("refused: {message}"))),
        Err(e) => Err(Unwritten::Failed(e.0)),
    }
}

/// An answer due to a request before anything is applied, and why it is written (None: an
/// acceptance, or the end of the window it replaces).
#[derive(Debug, Clone)]
pub struct Due {
    pub reason: Option<Reason>,
    pub request: ActivationRequest,
    pub answer: Answer,
}

/// A due answer and how writing it went.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub due: Due,
    pub result: Result<(), Unwritten>,
}

/// Writes many answers, `concurrency` at a time (in a dry run, none: each reads as written).
pub async fn write_all(
    client: &kube::Client,
    policy: &RetryPolicy,
    concurrency: usize,
    dues: Vec<Due>,
    dry_run: bool,
) -> Vec<Delivered> {
    if dry_run {
        return dues.into_iter().map(|due| Delivered { due, result: Ok(()) }).collect();
    }
    futures::stream::iter(dues)
        .map(|due| async move {
            let result = if due.answer.is_held_by(&due.request) {
                Ok(())
            } else {
                write(client, policy, &due.request, &due.answer).await
            };
            Delivered { due, result }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await
}

/// The engine hook of `run`: the request granted a namespace's window is answered `Accepted`
/// (and the requests it replaces `Ended`) only once the namespace is at its target. A namespace
/// rolled back or failed leaves its request pending: the next run judges it again.
pub struct AnswerOnceApplied {
    pub grants: BTreeMap<String, Grant>,
}

impl AfterApply for AnswerOnceApplied {
    fn after<'a>(
        &'a self,
        applier: &'a Applier,
        plan: &'a NamespacePlan,
        outcome: &'a NamespaceOutcome,
    ) -> BoxFuture<'a, Vec<Row>> {
        async move {
            let Some(g) = self.grants.get(&plan.namespace) else {
                return Vec::new();
            };
            // A refused Namespace write fails its namespace (never `Completed`): no answer then.
            if outcome.status != NsStatus::Completed {
                return Vec::new();
            }
            let mut rows = Vec::new();
            for (r, a) in std::iter::once((&g.request, &g.answer)).chain(g.replaced.iter().map(|(r, a)| (r, a))) {
                let written = {
                    let _slot = applier.permit().await;
                    write(&applier.client, &applier.policy, r, a).await
                };
                if let Some(row) = unwritten_row(&plan.namespace, &g.cost_center, r, a, written) {
                    rows.push(row);
                }
            }
            rows
        }
        .boxed()
    }
}

/// The `unanswered` summary row of an answer that could not be written (None when it was, or
/// when the request moved on: it is judged again at the next run).
pub fn unwritten_row(
    namespace: &str,
    cost_center: &str,
    request: &ActivationRequest,
    answer: &Answer,
    written: Result<(), Unwritten>,
) -> Option<Row> {
    match written {
        Ok(()) => None,
        Err(Unwritten::Moved) => {
            tracing::info!(request = %request.key(), "request gone or changed before its answer was written; judged again at the next run");
            None
        }
        Err(Unwritten::Failed(e)) => {
            let why = format!(
                "ActivationRequest {}: the answer {} ({}) could not be written: {e}",
                request.name,
                answer.phase.as_str(),
                answer.message
            );
            tracing::error!(request = %request.key(), error = %e, "answer not written");
            Some(Row::decided(
                namespace,
                cost_center,
                "activate",
                RowStatus::Unanswered,
                &why,
            ))
        }
    }
}
