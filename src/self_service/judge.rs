//! How each ActivationRequest is answered, and what it does to its namespace's window: pure,
//! from the inventory, the requests and the clock (docs/reference.md §5).
//!
//! - A request in a namespace this scheduler does not list (outside `NAMESPACE_SELECTOR`: maybe
//!   another instance's), or one left alone because its schedule does not parse, is left alone.
//! - A pending request in a listed namespace that is not managed (protected, excluded, being
//!   deleted) is `Rejected` (`namespace_not_managed`); one whose spec does not read is
//!   `Rejected` (`invalid`), or (`expired`) when its `until` has passed.
//! - The other pending requests are proposed to the rules, oldest first (creationTimestamp,
//!   then namespace/name); the cost center is the namespace's label.
//! - One window per namespace, held by the request named in `namespace-scheduler/active-request`.
//!   A request accepted in a namespace takes its window; the one that held it, and any accepted
//!   earlier in the same run, are `Ended` ("replaced by …") once the namespace is at its target.
//! - The window ends (the namespace goes down off-hours) when the request holding it is deleted,
//!   or is judged again (its spec changed) and rejected. While a changed request cannot be
//!   decided (its cost center's permissions item is invalid, the table unreadable), the window
//!   it held stays as granted.
//! - An `Accepted` request whose window has ended, expired or was taken over (an admin's `up`,
//!   a `down`) is `Ended`.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{bounded, ActivationRequest, Phase};
use crate::permissions::{ProposedWindow, Verdict};
use crate::scaling::inventory::{Inventory, ManagedNamespace};
use crate::scaling::plan::rfc3339;

/// An answer to write in a request's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub phase: Phase,
    /// The rule and the numbers, at most 1 KiB.
    pub message: String,
    pub granted_until: Option<DateTime<Utc>>,
    pub cost_center: Option<String>,
    /// The generation answered; None for `Pending` (it stays pending).
    pub observed_generation: Option<i64>,
}

impl Answer {
    fn new(phase: Phase, request: &ActivationRequest, message: &str) -> Answer {
        Answer {
            phase,
            message: bounded(message),
            granted_until: None,
            cost_center: None,
            observed_generation: (phase != Phase::Pending).then_some(request.generation),
        }
    }

    pub fn pending(request: &ActivationRequest, message: &str) -> Answer {
        Answer::new(Phase::Pending, request, message)
    }

    pub fn rejected(request: &ActivationRequest, message: &str) -> Answer {
        Answer::new(Phase::Rejected, request, message)
    }

    pub fn ended(request: &ActivationRequest, message: &str) -> Answer {
        Answer::new(Phase::Ended, request, message)
    }

    pub fn accepted(request: &ActivationRequest, until: DateTime<Utc>, cost_center: &str) -> Answer {
        Answer {
            granted_until: Some(until),
            cost_center: Some(cost_center.to_string()),
            ..Answer::new(
                Phase::Accepted,
                request,
                &format!("window open until {}, granted to {cost_center}", rfc3339(until)),
            )
        }
    }

    /// Whether the request's status already says this (nothing to write).
    pub fn is_held_by(&self, r: &ActivationRequest) -> bool {
        r.phase.as_deref() == Some(self.phase.as_str())
            && r.message.as_deref() == Some(self.message.as_str())
            && r.observed_generation == self.observed_generation
    }

    /// The merge patch of the status subresource (every field set or removed), conditional on
    /// `resource_version`.
    pub fn patch(&self, resource_version: Option<&str>) -> Value {
        let mut patch = json!({"status": {
            "phase": self.phase.as_str(),
            "message": self.message,
            "grantedUntil": self.granted_until.map(rfc3339),
            "costCenter": self.cost_center,
            "observedGeneration": self.observed_generation,
        }});
        if let Some(rv) = resource_version {
            patch["metadata"] = json!({"resourceVersion": rv});
        }
        patch
    }
}

/// Why an answer is written, for the summary and the audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Refused by a rule: audited `rejected` (once: the request is not judged again until its
    /// spec changes), a `rejected` row.
    Rejected { cost_center: String, requested_by: String },
    /// Not decided this run (an `unanswered` row, exit 1): the next run decides.
    Undecided { cost_center: String },
    /// Its window ended: bookkeeping.
    Ended,
}

/// An answer to write before anything is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub request: ActivationRequest,
    pub answer: Answer,
    pub reason: Reason,
}

/// A window granted to a request this run: applied to its namespace, then answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub request: ActivationRequest,
    pub until: DateTime<Utc>,
    pub cost_center: String,
    pub requested_by: String,
    /// `Accepted`, written once the namespace is at its target.
    pub answer: Answer,
    /// The requests whose window this one takes: `Ended` with it.
    pub replaced: Vec<(ActivationRequest, Answer)>,
}

/// The requests judged, before the rules are asked.
#[derive(Debug, Default)]
pub struct Judgement {
    pub replies: Vec<Reply>,
    /// Proposals for the rules, oldest request first.
    pub proposals: Vec<(ActivationRequest, ProposedWindow)>,
    /// Namespaces whose window ends this run.
    pub ending: BTreeSet<String>,
    /// (namespace, request) of windows whose request the list does not show: confirm it is
    /// gone ([`super::gone`]) before ending them with [`Judgement::holder_gone`].
    pub missing_holders: Vec<(String, String)>,
    /// By namespace: the request answered `Accepted` that holds its window.
    holders: BTreeMap<String, ActivationRequest>,
}

/// What the run does about requests, once the rules have spoken.
#[derive(Debug, Default)]
pub struct Decisions {
    pub replies: Vec<Reply>,
    /// By namespace: the window granted this run.
    pub grants: BTreeMap<String, Grant>,
    pub ending: BTreeSet<String>,
}

/// How a request answered `Accepted` ended, when it no longer holds an open window.
fn ended_because(ns: &ManagedNamespace, r: &ActivationRequest, at: DateTime<Utc>) -> Option<String> {
    match (ns.active_request(), ns.active_until()) {
        (Some(holder), Some(until)) if holder == r.name => {
            (until <= at).then(|| format!("the window ended at {}", rfc3339(until)))
        }
        (Some(holder), _) => Some(format!("replaced by ActivationRequest {holder}")),
        (None, Some(until)) if until > at => Some(format!(
            "replaced by a window an administrator opened with `namespace-scheduler up` (until {})",
            rfc3339(until)
        )),
        _ => Some("the window is closed (it ended, or `namespace-scheduler down` closed it)".to_string()),
    }
}

impl Judgement {
    /// Judges every request of the cluster. `decided(ns)`: the namespace is managed and its
    /// hours are known this run (its schedule parses).
    pub fn of(
        requests: &[ActivationRequest],
        inv: &Inventory,
        decided: impl Fn(&str) -> bool,
        at: DateTime<Utc>,
    ) -> Judgement {
        let mut j = Judgement::default();
        let mut ordered: Vec<&ActivationRequest> = requests.iter().collect();
        // Oldest first; a request whose creationTimestamp does not read goes last.
        ordered.sort_by(|a, b| {
            (a.created.is_none(), a.created, &a.namespace, &a.name).cmp(&(
                b.created.is_none(),
                b.created,
                &b.namespace,
                &b.name,
            ))
        });
        for r in ordered {
            if let Some(why) = inv.unmanaged.get(&r.namespace) {
                if r.pending() {
                    j.reject(r, "unassigned", &format!("namespace_not_managed: {why}"));
                }
                continue;
            }
            let Some(ns) = inv.namespaces.get(&r.namespace).filter(|_| decided(&r.namespace)) else {
                continue;
            };
            if !r.pending() {
                if r.answered(Phase::Accepted) {
                    if let Some(why) = ended_because(ns, r, at) {
                        j.replies.push(Reply {
                            answer: Answer::ended(r, &why),
                            request: r.clone(),
                            reason: Reason::Ended,
                        });
                    }
                }
                continue;
            }
            let (requested_by, until) = match (r.requester(), r.until()) {
                (Err(why), _) | (_, Err(why)) => {
                    j.reject(r, &ns.cost_center, &format!("invalid: {why}"));
                    continue;
                }
                (Ok(by), Ok(until)) => (by.to_string(), until),
            };
            if until <= at {
                let why = format!(
                    "expired: the requested window ended at {} (now {})",
                    rfc3339(until),
                    rfc3339(at)
                );
                j.reject(r, &ns.cost_center, &why);
                continue;
            }
            j.proposals.push((
                r.clone(),
                ProposedWindow {
                    namespace: ns.name.clone(),
                    cost_center: ns.cost_center.clone(),
                    label: ns.cost_center_label().map(str::to_string),
                    requested_by,
                    until,
                },
            ));
        }
        j.windows(requests, inv, &decided);
        j
    }

    /// Which windows end this run, and who holds the others: a window whose request is gone
    /// (to be confirmed), or answered otherwise than `Accepted` and not pending, ends; so does
    /// one whose request changed and is refused outright.
    fn windows(&mut self, requests: &[ActivationRequest], inv: &Inventory, decided: impl Fn(&str) -> bool) {
        let by_ns: BTreeMap<&str, Vec<&ActivationRequest>> = requests.iter().fold(BTreeMap::new(), |mut m, r| {
            m.entry(r.namespace.as_str()).or_insert_with(Vec::new).push(r);
            m
        });
        // Windows whose request is gone, or answered otherwise than `Accepted` and not pending.
        for ns in inv.namespaces.values().filter(|ns| decided(&ns.name)) {
            let Some(holder) = ns.active_request() else { continue };
            let found = by_ns
                .get(ns.name.as_str())
                .and_then(|rs| rs.iter().find(|r| r.name == holder));
            match found {
                None => self.missing_holders.push((ns.name.clone(), holder.to_string())),
                Some(r) if r.pending() => {}
                Some(r) if r.answered(Phase::Accepted) => {
                    self.holders.insert(ns.name.clone(), (*r).clone());
                }
                Some(_) => {
                    self.ending.insert(ns.name.clone());
                }
            }
        }
        // A changed request whose new spec is refused outright ends the window it held.
        for reply in &self.replies {
            let r = &reply.request;
            let holds = inv
                .namespaces
                .get(&r.namespace)
                .is_some_and(|ns| ns.active_request() == Some(r.name.as_str()));
            if holds && matches!(reply.reason, Reason::Rejected { .. }) {
                self.ending.insert(r.namespace.clone());
            }
        }
    }

    fn reject(&mut self, r: &ActivationRequest, cost_center: &str, why: &str) {
        self.replies.push(Reply {
            answer: Answer::rejected(r, why),
            request: r.clone(),
            reason: Reason::Rejected {
                cost_center: cost_center.to_string(),
                requested_by: r.requester().unwrap_or("unknown").to_string(),
            },
        });
    }

    /// The request holding `namespace`'s window is confirmed gone: the window ends.
    pub fn holder_gone(&mut self, namespace: &str) {
        self.ending.insert(namespace.to_string());
    }

    /// The proposals, as the rules take them.
    pub fn proposed(&self) -> Vec<ProposedWindow> {
        self.proposals.iter().map(|(_, p)| p.clone()).collect()
    }

    /// With the rules' verdicts (in the proposals' order), or why the permissions table could
    /// not be read.
    pub fn settle(self, verdicts: std::result::Result<Vec<Verdict>, String>, inv: &Inventory) -> Decisions {
        let Judgement {
            mut replies,
            proposals,
            mut ending,
            holders,
            ..
        } = self;
        let mut grants: BTreeMap<String, Grant> = BTreeMap::new();
        let verdicts: Vec<Option<Verdict>> = match verdicts {
            Ok(v) => v.into_iter().map(Some).collect(),
            Err(_) => proposals.iter().map(|_| None).collect(),
        };
        for ((r, p), verdict) in proposals.into_iter().zip(verdicts) {
            let holds = inv
                .namespaces
                .get(&r.namespace)
                .is_some_and(|ns| ns.active_request() == Some(r.name.as_str()));
            match verdict {
                Some(Verdict::Granted(_)) => {
                    let answer = Answer::accepted(&r, p.until, &p.cost_center);
                    let mut replaced = Vec::new();
                    if let Some(earlier) = grants.remove(&r.namespace) {
                        replaced = earlier.replaced;
                        let why = format!("replaced by ActivationRequest {}", r.name);
                        replaced.push((earlier.request.clone(), Answer::ended(&earlier.request, &why)));
                    }
                    grants.insert(
                        r.namespace.clone(),
                        Grant {
                            request: r,
                            until: p.until,
                            cost_center: p.cost_center,
                            requested_by: p.requested_by,
                            answer,
                            replaced,
                        },
                    );
                }
                Some(Verdict::Rejected(rule)) => {
                    if holds {
                        ending.insert(r.namespace.clone());
                    }
                    replies.push(Reply {
                        answer: Answer::rejected(&r, &rule.to_string()),
                        reason: Reason::Rejected {
                            cost_center: p.cost_center,
                            requested_by: p.requested_by,
                        },
                        request: r,
                    });
                }
                undecided => {
                    let message = match undecided {
                        Some(Verdict::Undecided(invalid)) => invalid.to_string(),
                        Some(Verdict::Deferred(why)) => format!("unanswered: {why}; the next run decides"),
                        _ => "unanswered: the permissions or windows table could not be read; the next run decides"
                            .to_string(),
                    };
                    replies.push(Reply {
                        answer: Answer::pending(&r, &message),
                        reason: Reason::Undecided {
                            cost_center: p.cost_center,
                        },
                        request: r,
                    })
                }
            }
        }
        replace_holders(&mut grants, &holders, &replies);
        // Windows a grant opens again are not ending.
        ending.retain(|ns| !grants.contains_key(ns));
        Decisions {
            replies,
            grants,
            ending,
        }
    }
}

/// The request that held a granted window before, answered `Accepted`, is replaced by the grant
/// (unless it is answered otherwise this run already).
fn replace_holders(
    grants: &mut BTreeMap<String, Grant>,
    holders: &BTreeMap<String, ActivationRequest>,
    replies: &[Reply],
) {
    for (ns_name, g) in grants.iter_mut() {
        let Some(holder) = holders.get(ns_name).filter(|h| h.name != g.request.name) else {
            continue;
        };
        let answered = replies.iter().any(|x| x.request == *holder) || g.replaced.iter().any(|(x, _)| x == holder);
        if !answered {
            let why = format!("replaced by ActivationRequest {}", g.request.name);
            g.replaced.push((holder.clone(), Answer::ended(holder, &why)));
        }
    }
}
