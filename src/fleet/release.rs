//! The windows a run releases once its namespaces are applied (docs/fleet.md §3): those it
//! recorded for namespaces that did not come up, and those it closed on namespaces that went
//! down. Decided from the run's outcome per namespace; nothing is released in a dry run.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{FleetWindows, WindowKey};
use crate::error::Result;
use crate::hours::BusinessHours;
use crate::permissions::{rules, Window};

/// What a run hands the engine about its windows.
#[derive(Debug, Clone)]
pub struct AfterRun {
    windows: FleetWindows,
    /// By namespace: windows recorded this run, released when the namespace did not reach its
    /// target (rolled back, failed, not processed): it never held the window.
    granted: BTreeMap<String, WindowKey>,
    /// By namespace: windows this run closes (`down`, a request deleted, rejected or replaced),
    /// released once the namespace reached its target; a namespace that did not keeps its window.
    ending: BTreeMap<String, WindowKey>,
}

impl AfterRun {
    pub fn new(windows: FleetWindows, granted: BTreeMap<String, WindowKey>) -> Self {
        AfterRun {
            windows,
            granted,
            ending: BTreeMap::new(),
        }
    }

    /// Adds a window the run closes, if it is recorded in the windows table: open at `at` and
    /// holding an off-hours slot (a window inside business hours never was). When the calendar
    /// cannot say, it is released all the same (a delete of a key that is not there is harmless).
    pub fn ending(&mut self, window: &Window, hours: &BusinessHours, at: DateTime<Utc>) {
        if !window.open_at(at) {
            return;
        }
        if rules::first_non_business(hours, at, window.until).map_or(true, |from| from.is_some()) {
            let key = self.windows.key(&window.cost_center, &window.namespace);
            self.ending.insert(window.namespace.clone(), key);
        }
    }

    /// Whether there is nothing to release, whatever the outcome.
    /// [`ending`](Self::ending) for each of `windows`.
    pub fn ending_all(&mut self, windows: &[Window], hours: &BusinessHours, at: DateTime<Utc>) {
        for w in windows {
            self.ending(w, hours, at);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.granted.is_empty() && self.ending.is_empty()
    }

    /// The keys to release, given which namespaces did not reach their target.
    pub fn to_release(&self, failed: impl Fn(&str) -> bool) -> Vec<WindowKey> {
        let granted = self.granted.iter().filter(|(ns, _)| failed(ns));
        let ended = self
            .ending
            .iter()
            .filter(|(ns, _)| !failed(ns) && !self.granted.contains_key(*ns));
        granted.chain(ended).map(|(_, k)| k.clone()).collect()
    }

    /// Releases [`to_release`](Self::to_release) (one BatchWriteItem per 25; none when empty).
    pub async fn settle(&self, failed: impl Fn(&str) -> bool) -> Result<usize> {
        let keys = self.to_release(failed);
        if keys.is_empty() {
            return Ok(0);
        }
        self.windows.release(&keys).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn after_run() -> AfterRun {
        let client = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::Config::builder()
                .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
                .build(),
        );
        let windows = FleetWindows::new(client, "windows", "eks-a");
        let granted = BTreeMap::from([
            ("dev-new".to_string(), windows.key("IT-DEVELOPMENT", "dev-new")),
            ("dev-again".to_string(), windows.key("IT-DEVELOPMENT", "dev-again")),
        ]);
        AfterRun::new(windows, granted)
    }

    #[test]
    fn grants_are_released_when_their_namespace_failed_and_ends_when_it_did_not() {
        let hours = crate::config::Config::from_vars([("POD_NAMESPACE", "task-scheduler")])
            .unwrap()
            .business;
        // Wednesday 2026-11-25 15:00 Bogotá: business hours, which end at 18:00.
        let at = Utc.with_ymd_and_hms(2026, 11, 25, 20, 0, 0).unwrap();
        let window = |ns: &str, hours_left: i64| Window {
            namespace: ns.to_string(),
            cost_center: "QA-TESTING".to_string(),
            until: at + chrono::Duration::hours(hours_left),
        };
        let mut a = after_run();
        a.ending(&window("qa-down", 6), &hours, at);
        a.ending(&window("qa-stuck", 6), &hours, at);
        // Ends at 17:00, inside business hours: never recorded, nothing to release.
        a.ending(&window("qa-short", 2), &hours, at);
        // Already over: it counts for nothing, the TTL clears it.
        a.ending(&window("qa-spent", -1), &hours, at);
        // Granted again this run: the grant's record is the one that stands.
        a.ending(&window("dev-again", 6), &hours, at);
        let failed = |ns: &str| matches!(ns, "dev-new" | "qa-stuck");
        let keys: Vec<String> = a.to_release(failed).into_iter().map(|k| k.to_string()).collect();
        assert_eq!(
            keys,
            ["(IT-DEVELOPMENT, eks-a#dev-new)", "(QA-TESTING, eks-a#qa-down)"],
            "the failed grant and the window closed on a namespace that went down"
        );
        assert!(a.to_release(|_| false).iter().all(|k| k.cost_center == "QA-TESTING"));
        assert!(!a.is_empty());
    }
}
