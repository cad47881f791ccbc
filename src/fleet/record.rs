//! The windows table's items (docs/reference.md §5, "Windows across a fleet"): one item per
//! window that holds an off-hours slot, and one version item per cost center. What the table
//! holds is hostile until parsed: an item that does not read is an error that names its key,
//! and fails its own cost center only.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, SecondsFormat, Utc};

use crate::dynamo::item::{expected, Item as Reader};
use crate::permissions::Window;

/// Hash key: one partition per cost center.
pub const PARTITION_KEY: &str = "cost_center";
/// Range key: `<cluster>#<namespace>` for a window, [`VERSION_KEY`] for the version item.
pub const SORT_KEY: &str = "window_key";
/// The GSI of one cluster's windows, (cluster, namespace); the version items are not in it.
pub const CLUSTER_INDEX: &str = "cluster-namespace-index";
/// The table's TTL attribute (epoch seconds).
pub const TTL_ATTRIBUTE: &str = "expires_at";
/// The range key of a cost center's version item. No window has it: a window's key is
/// `<cluster>#<namespace>` with a non-empty cluster name before the `#`.
pub const VERSION_KEY: &str = "#version";
/// The version item's counter, bumped by every grant that records a window of the cost center.
pub const VERSION_ATTRIBUTE: &str = "version";
/// How long a window's item stays after its end. It stops counting at its `until`; the TTL
/// only clears it away.
pub const KEPT_AFTER_UNTIL: Duration = Duration::hours(24);

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// The key of one window's item.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WindowKey {
    pub cost_center: String,
    /// `<cluster>#<namespace>`.
    pub window_key: String,
}

impl WindowKey {
    pub fn of(cost_center: &str, cluster: &str, namespace: &str) -> Self {
        WindowKey {
            cost_center: cost_center.to_string(),
            window_key: format!("{cluster}#{namespace}"),
        }
    }

    /// Whether the key is one of `cluster`'s windows.
    pub fn is_of_cluster(&self, cluster: &str) -> bool {
        !cluster.is_empty()
            && self
                .window_key
                .strip_prefix(cluster)
                .and_then(|rest| rest.strip_prefix('#'))
                .is_some_and(|namespace| !namespace.is_empty() && !namespace.contains('#'))
    }

    pub fn to_item(&self) -> Item {
        HashMap::from([
            (PARTITION_KEY.to_string(), AttributeValue::S(self.cost_center.clone())),
            (SORT_KEY.to_string(), AttributeValue::S(self.window_key.clone())),
        ])
    }

    /// The key of an item, when its key attributes are strings (DynamoDB enforces it).
    pub fn from_item(item: &Item) -> Option<Self> {
        let item = Reader(item);
        Some(WindowKey {
            cost_center: item.string(PARTITION_KEY).ok()??.to_string(),
            window_key: item.string(SORT_KEY).ok()??.to_string(),
        })
    }

    /// The version item of a cost center.
    pub fn version_of(cost_center: &str) -> Self {
        WindowKey {
            cost_center: cost_center.to_string(),
            window_key: VERSION_KEY.to_string(),
        }
    }
}

impl std::fmt::Display for WindowKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "({}, {})", self.cost_center, self.window_key)
    }
}

/// A window that holds an off-hours slot, as the windows table records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowRecord {
    pub cost_center: String,
    pub cluster: String,
    pub namespace: String,
    /// The window ends here; from then on it holds no slot.
    pub until: DateTime<Utc>,
    /// The first non-business instant it covers (from then on it holds a slot).
    pub holds_slot_from: DateTime<Utc>,
    pub requested_by: String,
    pub run_id: String,
    pub granted_at: DateTime<Utc>,
}

fn instant(t: DateTime<Utc>) -> AttributeValue {
    // Full precision: a window read back ends exactly where it was granted to.
    AttributeValue::S(t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

impl WindowRecord {
    pub fn key(&self) -> WindowKey {
        WindowKey::of(&self.cost_center, &self.cluster, &self.namespace)
    }

    /// The window as the rules count it.
    pub fn window(&self) -> Window {
        Window {
            namespace: self.namespace.clone(),
            cost_center: self.cost_center.clone(),
            until: self.until,
        }
    }

    pub fn to_item(&self) -> Item {
        let s = |v: &str| AttributeValue::S(v.to_string());
        let expires = (self.until + KEPT_AFTER_UNTIL).timestamp();
        let mut item = self.key().to_item();
        item.extend([
            ("cluster".to_string(), s(&self.cluster)),
            ("namespace".to_string(), s(&self.namespace)),
            ("until".to_string(), instant(self.until)),
            ("holds_slot_from".to_string(), instant(self.holds_slot_from)),
            ("requested_by".to_string(), s(&self.requested_by)),
            ("run_id".to_string(), s(&self.run_id)),
            ("granted_at".to_string(), instant(self.granted_at)),
            (TTL_ATTRIBUTE.to_string(), AttributeValue::N(expires.to_string())),
        ]);
        item
    }

    /// Reads a window's item; an error says what does not read (the caller names the key).
    pub fn from_item(item: &Item) -> Result<Self, String> {
        let item = Reader(item);
        let text = |k: &str| match item.required_string(k) {
            Ok("") => Err(format!("{k}: empty")),
            Ok(v) => Ok(v.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let time = |k: &str| {
            let v = text(k)?;
            DateTime::parse_from_rfc3339(&v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| format!("{k}: {v:?} is not an RFC 3339 instant ({e})"))
        };
        let record = WindowRecord {
            cost_center: text(PARTITION_KEY)?,
            cluster: text("cluster")?,
            namespace: text("namespace")?,
            until: time("until")?,
            holds_slot_from: time("holds_slot_from")?,
            requested_by: text("requested_by")?,
            run_id: text("run_id")?,
            granted_at: time("granted_at")?,
        };
        crate::config::validate_namespace_name("namespace", &record.namespace).map_err(|e| e.to_string())?;
        let key = text(SORT_KEY)?;
        if key != record.key().window_key {
            return Err(format!(
                "{SORT_KEY} {key:?} is not <cluster>#<namespace> of its own cluster {:?} and namespace {:?}",
                record.cluster, record.namespace
            ));
        }
        Ok(record)
    }
}

/// A cost center's partition, read in one consistent Query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Partition {
    /// The version read (None: the cost center never had a window recorded).
    pub version: Option<u64>,
    pub windows: Vec<WindowRecord>,
}

impl Partition {
    /// Reads a partition's items. One item that does not read makes the whole partition an
    /// error (its cost center cannot be decided: counting without it could exceed the cap).
    pub fn from_items(cost_center: &str, items: &[Item]) -> Result<Self, String> {
        let mut partition = Partition::default();
        for item in items {
            let key = WindowKey::from_item(item).ok_or_else(|| format!("an item without a key: {item:?}"))?;
            if key.cost_center != cost_center {
                return Err(format!("item {key} read in the partition of {cost_center}"));
            }
            if key.window_key == VERSION_KEY {
                let reader = Reader(item);
                let version = reader.required(VERSION_ATTRIBUTE, reader.count(VERSION_ATTRIBUTE), expected::COUNT);
                partition.version = Some(version.map_err(|e| format!("item {key}: {e}"))?);
                continue;
            }
            let record = WindowRecord::from_item(item).map_err(|e| format!("item {key}: {e}"))?;
            partition.windows.push(record);
        }
        Ok(partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn record() -> WindowRecord {
        let t = |h| Utc.with_ymd_and_hms(2026, 11, 25, h, 0, 0).unwrap();
        WindowRecord {
            cost_center: "IT-DEVELOPMENT".into(),
            cluster: "eks-a".into(),
            namespace: "dev-api".into(),
            until: t(3) + Duration::nanoseconds(250_000_001),
            holds_slot_from: t(23),
            requested_by: "ana@example.com".into(),
            run_id: "run-1".into(),
            granted_at: t(22),
        }
    }

    #[test]
    fn a_record_reads_back_equal_with_its_ttl_a_day_after_its_end() {
        let r = record();
        let item = r.to_item();
        assert_eq!(WindowRecord::from_item(&item), Ok(r.clone()));
        assert_eq!(
            item[SORT_KEY],
            AttributeValue::S("eks-a#dev-api".into()),
            "range key <cluster>#<namespace>"
        );
        let ttl = item[TTL_ATTRIBUTE].as_n().unwrap().parse::<i64>().unwrap();
        assert_eq!(ttl, r.until.timestamp() + 86_400);
    }

    #[test]
    fn hostile_items_are_errors_that_say_what() {
        let base = record().to_item();
        let with = |k: &str, v: Option<AttributeValue>| {
            let mut item = base.clone();
            match v {
                Some(v) => item.insert(k.to_string(), v),
                None => item.remove(k),
            };
            item
        };
        let s = |v: &str| Some(AttributeValue::S(v.into()));
        let cases = [
            (with("until", None), "until: missing (expected a string, S)"),
            (
                with("until", s("tomorrow")),
                "until: \"tomorrow\" is not an RFC 3339 instant",
            ),
            (
                with("until", Some(AttributeValue::N("5".into()))),
                "until: the number 5 (expected a string, S)",
            ),
            (with("cluster", s("")), "cluster: empty"),
            (with("namespace", s("Dev_API")), "not a valid namespace name"),
            (with(SORT_KEY, s("eks-b#dev-api")), "is not <cluster>#<namespace>"),
            (
                with("requested_by", Some(AttributeValue::L(vec![]))),
                "requested_by: a list of 0 value(s) (expected a string, S)",
            ),
            (with("granted_at", None), "granted_at: missing (expected a string, S)"),
        ];
        for (item, want) in cases {
            let err = WindowRecord::from_item(&item).unwrap_err();
            assert!(err.contains(want), "{want:?} not in {err:?}");
        }
    }

    #[test]
    fn a_partition_reads_its_version_and_fails_whole_on_one_bad_item() {
        let mut version = WindowKey::version_of("IT-DEVELOPMENT").to_item();
        version.insert(VERSION_ATTRIBUTE.into(), AttributeValue::N("7".into()));
        let good = record().to_item();
        let p = Partition::from_items("IT-DEVELOPMENT", &[version.clone(), good.clone()]).unwrap();
        assert_eq!(p.version, Some(7));
        assert_eq!(p.windows, vec![record()]);
        assert_eq!(
            Partition::from_items("IT-DEVELOPMENT", &[]).unwrap(),
            Partition::default()
        );

        let mut bad = good.clone();
        bad.insert("until".into(), AttributeValue::Bool(true));
        let err = Partition::from_items("IT-DEVELOPMENT", &[version.clone(), bad]).unwrap_err();
        assert!(
            err.contains("item (IT-DEVELOPMENT, eks-a#dev-api): until: the boolean true (expected a string, S)"),
            "{err}"
        );
        let mut bad_version = version;
        bad_version.insert(VERSION_ATTRIBUTE.into(), AttributeValue::N("-1".into()));
        let err = Partition::from_items("IT-DEVELOPMENT", &[bad_version]).unwrap_err();
        assert!(
            err.contains("version: the number -1 (expected a non-negative integer, N)"),
            "{err}"
        );
        let err = Partition::from_items("QA-TESTING", &[good]).unwrap_err();
        assert!(err.contains("read in the partition of QA-TESTING"), "{err}");
    }

    #[test]
    fn a_key_belongs_to_one_cluster() {
        let cases = [
            ("eks-a#dev-api", "eks-a", true),
            ("eks-a#dev-api", "eks", false),
            ("eks-ab#dev-api", "eks-a", false),
            ("eks-a#", "eks-a", false),
            ("eks-a#x#y", "eks-a", false),
            (VERSION_KEY, "", false),
        ];
        for (key, cluster, want) in cases {
            let k = WindowKey {
                cost_center: "CC".into(),
                window_key: key.into(),
            };
            assert_eq!(k.is_of_cluster(cluster), want, "{key} of {cluster}");
        }
    }
}
