//! Programmable fault injection.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a fault rule does when it fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum FaultAction {
    /// Answer with this HTTP status and a `Status` body (e.g. 500, 503, 409, 429, 504).
    #[serde(rename_all = "camelCase")]
    Status {
        /// HTTP status code.
        code: u16,
        /// Adds a `Retry-After` header (seconds), as apiservers do on 429.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_seconds: Option<u64>,
        /// Overrides the Status message.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// Sleep this long, then serve the request normally (other rules still apply).
    Latency {
        /// Milliseconds of delay.
        ms: u64,
    },
    /// Close the connection without any response; the request is not processed.
    Drop,
    /// Process the request (the write happens), then close the connection without a response.
    CommitThenDrop,
    /// One write lands elsewhere (a Lease renewal), etcd compacts at the new revision, then the
    /// request is served normally: on a list's next page, its continue token has expired (410).
    Compact,
}

impl FaultAction {
    /// A status fault without Retry-After.
    pub fn status(code: u16) -> Self {
        FaultAction::Status {
            code,
            retry_after_seconds: None,
            message: None,
        }
    }

    /// A 429 with a `Retry-After` header.
    pub fn too_many_requests(retry_after_seconds: u64) -> Self {
        FaultAction::Status {
            code: 429,
            retry_after_seconds: Some(retry_after_seconds),
            message: None,
        }
    }

    fn label(&self) -> String {
        match self {
            FaultAction::Status { code, .. } => format!("status:{code}"),
            FaultAction::Latency { ms } => format!("latency:{ms}ms"),
            FaultAction::Drop => "drop".into(),
            FaultAction::CommitThenDrop => "commitThenDrop".into(),
            FaultAction::Compact => "compact".into(),
        }
    }
}

/// A fault rule: every `Some` matcher must match; then `nth` / `probability` / `times` decide
/// whether it fires. Build with [`FaultRule::new`] and the builder methods, or from JSON
/// (camelCase field names, e.g. `{"verb":"patch","resource":"deployments","times":1,
/// "action":{"type":"status","code":503}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultRule {
    /// Kubernetes verb: get, list, create, update, patch, delete, watch, deletecollection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verb: Option<String>,
    /// Resource plural, e.g. `deployments` (matches the main resource and its subresources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Subresource, e.g. `scale`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subresource: Option<String>,
    /// Namespace of the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Object name of the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Fire only on the n-th matching request (1-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nth: Option<u64>,
    /// Fire on each matching request with this probability (seeded RNG, reproducible).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    /// Seed for this rule's RNG (default: the server's fault seed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Stop firing after this many hits (1 = one-shot); unlimited when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
    /// What to do.
    pub action: FaultAction,
}

impl FaultRule {
    /// A rule matching every API request, with the given action.
    pub fn new(action: FaultAction) -> Self {
        FaultRule {
            verb: None,
            resource: None,
            subresource: None,
            namespace: None,
            name: None,
            nth: None,
            probability: None,
            seed: None,
            times: None,
            action,
        }
    }
    /// Match only this verb.
    pub fn verb(mut self, v: &str) -> Self {
        self.verb = Some(v.into());
        self
    }
    /// Match only this resource plural.
    pub fn resource(mut self, r: &str) -> Self {
        self.resource = Some(r.into());
        self
    }
    /// Match only this subresource.
    pub fn subresource(mut self, s: &str) -> Self {
        self.subresource = Some(s.into());
        self
    }
    /// Match only this namespace.
    pub fn namespace(mut self, ns: &str) -> Self {
        self.namespace = Some(ns.into());
        self
    }
    /// Match only this object name.
    pub fn name(mut self, n: &str) -> Self {
        self.name = Some(n.into());
        self
    }
    /// Fire only on the n-th match (1-based).
    pub fn nth(mut self, n: u64) -> Self {
        self.nth = Some(n);
        self
    }
    /// Fire with probability `p` (0..=1) using a seeded RNG.
    pub fn probability(mut self, p: f64, seed: u64) -> Self {
        self.probability = Some(p);
        self.seed = Some(seed);
        self
    }
    /// Fire at most `n` times.
    pub fn times(mut self, n: u64) -> Self {
        self.times = Some(n);
        self
    }
    /// Fire once.
    pub fn once(self) -> Self {
        self.times(1)
    }
}

/// Counts of injected faults, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultCounts {
    /// Injected status responses, by HTTP code.
    pub status: BTreeMap<u16, u64>,
    /// Requests delayed by a latency rule.
    pub latency: u64,
    /// Connections dropped before processing.
    pub drop: u64,
    /// Writes committed and then the connection dropped.
    pub commit_then_drop: u64,
    /// Compactions before a request.
    #[serde(default)]
    pub compact: u64,
    /// Everything above.
    pub total: u64,
}

/// What the request being matched looks like.
pub(crate) struct Probe<'a> {
    pub verb: &'a str,
    pub resource: &'a str,
    pub subresource: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
}

/// The decision for one request.
#[derive(Debug, Default)]
pub(crate) struct Decision {
    pub latency_ms: u64,
    /// Compact before serving (see [`FaultAction::Compact`]).
    pub compact: bool,
    pub action: Option<FaultAction>,
    pub labels: Vec<String>,
}

#[derive(Debug)]
struct Active {
    id: u64,
    rule: FaultRule,
    matched: u64,
    fired: u64,
    rng: u64,
}

/// The rule set and counters.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    rules: Vec<Active>,
    next_id: u64,
    pub seed: u64,
    pub counts: FaultCounts,
}

fn next_f64(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

impl Faults {
    pub fn add(&mut self, rule: FaultRule) -> u64 {
        self.next_id += 1;
        let rng = rule.seed.unwrap_or(self.seed) ^ 0x5DEE_CE66_D1CE_5EED;
        self.rules.push(Active {
            id: self.next_id,
            rule,
            matched: 0,
            fired: 0,
            rng,
        });
        self.next_id
    }

    pub fn remove(&mut self, id: u64) -> bool {
        let before = self.rules.len();
        self.rules.retain(|a| a.id != id);
        before != self.rules.len()
    }

    pub fn clear(&mut self) {
        self.rules.clear();
    }

    /// How many times rule `id` has fired; `None` once it is removed.
    pub fn fired(&self, id: u64) -> Option<u64> {
        self.rules.iter().find(|a| a.id == id).map(|a| a.fired)
    }

    pub fn list(&self) -> Vec<serde_json::Value> {
        self.rules
            .iter()
            .map(|a| serde_json::json!({"id": a.id, "rule": a.rule, "matched": a.matched, "fired": a.fired}))
            .collect()
    }

    pub fn decide(&mut self, p: &Probe) -> Decision {
        let mut d = Decision::default();
        for a in &mut self.rules {
            let r = &a.rule;
            let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
            if !(eq(&r.verb, p.verb)
                && eq(&r.resource, p.resource)
                && eq(&r.subresource, p.subresource)
                && eq(&r.namespace, p.namespace)
                && eq(&r.name, p.name))
            {
                continue;
            }
            if d.action.is_some() && !matches!(r.action, FaultAction::Latency { .. } | FaultAction::Compact) {
                continue;
            }
            a.matched += 1;
            if r.times.is_some_and(|t| a.fired >= t) || r.nth.is_some_and(|n| a.matched != n) {
                continue;
            }
            if let Some(prob) = r.probability {
                if next_f64(&mut a.rng) >= prob {
                    continue;
                }
            }
            a.fired += 1;
            self.counts.total += 1;
            d.labels.push(r.action.label());
            match &r.action {
                FaultAction::Latency { ms } => {
                    self.counts.latency += 1;
                    d.latency_ms += ms;
                }
                FaultAction::Compact => {
                    self.counts.compact += 1;
                    d.compact = true;
                }
                FaultAction::Status { code, .. } => {
                    *self.counts.status.entry(*code).or_default() += 1;
                    d.action = Some(r.action.clone());
                }
                FaultAction::Drop => {
                    self.counts.drop += 1;
                    d.action = Some(r.action.clone());
                }
                FaultAction::CommitThenDrop => {
                    self.counts.commit_then_drop += 1;
                    d.action = Some(r.action.clone());
                }
            }
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe() -> Probe<'static> {
        Probe {
            verb: "patch",
            resource: "deployments",
            subresource: "",
            namespace: "a",
            name: "x",
        }
    }

    #[test]
    fn nth_times_and_probability() {
        let mut f = Faults::default();
        f.add(FaultRule::new(FaultAction::Drop).verb("patch").nth(2));
        assert!(f.decide(&probe()).action.is_none());
        assert_eq!(f.decide(&probe()).action, Some(FaultAction::Drop));
        assert!(f.decide(&probe()).action.is_none());
        f.clear();
        f.add(FaultRule::new(FaultAction::status(503)).resource("statefulsets"));
        assert!(f.decide(&probe()).action.is_none());
        f.clear();
        f.add(FaultRule::new(FaultAction::status(500)).probability(0.3, 7));
        let hits: Vec<bool> = (0..200).map(|_| f.decide(&probe()).action.is_some()).collect();
        let n = hits.iter().filter(|h| **h).count();
        assert!((30..90).contains(&n), "{n}");
        let mut g = Faults::default();
        g.add(FaultRule::new(FaultAction::status(500)).probability(0.3, 7));
        let again: Vec<bool> = (0..200).map(|_| g.decide(&probe()).action.is_some()).collect();
        assert_eq!(hits, again, "same seed, same sequence");
        assert_eq!(f.counts.status[&500], n as u64);
    }

    #[test]
    fn fired_is_counted_per_rule() {
        let mut f = Faults::default();
        let once = f.add(FaultRule::new(FaultAction::Drop).verb("patch").once());
        let other = f.add(FaultRule::new(FaultAction::status(500)).verb("list"));
        for _ in 0..3 {
            f.decide(&probe());
        }
        assert_eq!((f.fired(once), f.fired(other)), (Some(1), Some(0)));
        f.remove(once);
        assert_eq!(f.fired(once), None);
    }

    #[test]
    fn json_shape() {
        let r: FaultRule = serde_json::from_str(
            r#"{"verb":"list","times":1,"action":{"type":"status","code":429,"retryAfterSeconds":2}}"#,
        )
        .unwrap();
        assert_eq!(r, FaultRule::new(FaultAction::too_many_requests(2)).verb("list").once());
        let d: FaultRule = serde_json::from_str(r#"{"action":{"type":"commitThenDrop"}}"#).unwrap();
        assert_eq!(d.action, FaultAction::CommitThenDrop);
    }
}
