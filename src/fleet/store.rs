//! The windows table: reads, the atomic grant with its retries, releases, and one cluster's
//! listing. The decisions are [`super::plan`]'s.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, DeleteRequest, Put, TransactWriteItem, Update, WriteRequest};
use aws_sdk_dynamodb::Client;
use futures::StreamExt;

use super::plan::{self, Commit, Listed, MAX_TRANSACTION_ITEMS};
use super::record::{Item, Partition, WindowKey, WindowRecord, CLUSTER_INDEX, PARTITION_KEY, VERSION_ATTRIBUTE};
use super::{Decision, GrantBatch};
use crate::config::Config;
use crate::dynamo;
use crate::error::{Error, Result};
use crate::permissions::Window;

/// Reads and commits of one grant before its requests are left undecided: every lost race is
/// another cluster's grant committed in between, so this outlasts that many concurrent writers.
pub const MAX_ROUNDS: u32 = 10;
/// Partitions read at once.
const READ_CONCURRENCY: usize = 8;
/// BatchWriteItem's limit.
const RELEASE_BATCH: usize = 25;
const RELEASE_ATTEMPTS: u32 = 6;

/// The windows table of the fleet, as one cluster sees it.
#[derive(Debug, Clone)]
pub struct FleetWindows {
    client: Client,
    table: String,
    cluster: String,
}

/// How a commit ended.
enum Committed {
    Yes,
    /// Another writer changed a cost center since it was read (or held its items): read again.
    LostRace(String),
}

impl FleetWindows {
    pub fn new(client: Client, table: impl Into<String>, cluster: impl Into<String>) -> Self {
        FleetWindows {
            client,
            table: table.into(),
            cluster: cluster.into(),
        }
    }

    /// `WINDOWS_TABLE_NAME`, seen from `EKS_CLUSTER_NAME`.
    pub fn from_config(client: Client, config: &Config) -> Self {
        Self::new(client, &config.windows_table, &config.cluster_name)
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The key of this cluster's window of `namespace` granted to `cost_center`.
    pub fn key(&self, cost_center: &str, namespace: &str) -> WindowKey {
        WindowKey::of(cost_center, &self.cluster, namespace)
    }

    /// Decides every request of `batch` over the fleet and records, atomically, the windows it
    /// grants that hold a slot (docs/fleet.md). One decision per request, in order. `Err` when
    /// DynamoDB cannot be read or written (callers fail closed: nothing was granted), or for an
    /// all-or-nothing batch too large for one transaction.
    pub async fn grant(&self, batch: &GrantBatch<'_>) -> Result<Vec<Decision>> {
        self.check_caps(batch)?;
        let mut decisions: Vec<Option<Decision>> = vec![None; batch.requests.len()];
        let mut held: Vec<Window> = batch.own_windows.to_vec();
        let mut pending: Vec<usize> = (0..batch.requests.len()).collect();
        let mut lost = 0;
        while !pending.is_empty() {
            let partitions = self.read_partitions(&wanted(batch, &pending)).await?;
            let round = plan::round(batch, &self.cluster, &pending, &held, &partitions)?;
            if batch.all_or_nothing && !round.deferred.is_empty() {
                return Err(Error::Usage(format!(
                    "{} windows are too many to grant all or nothing: one transaction holds {MAX_TRANSACTION_ITEMS} writes; ask for fewer namespaces at once",
                    batch.requests.len()
                )));
            }
            if !round.commit.is_empty() {
                if let Committed::LostRace(why) = self.commit(&round.commit, batch.run_id).await? {
                    lost += 1;
                    tracing::info!(table = %self.table, round = lost, reason = %why, "windows grant lost a race; reading again");
                    if lost >= MAX_ROUNDS {
                        let why = format!(
                            "lost the race {lost} times in a row to other clusters granting the same cost centers; try again"
                        );
                        for i in pending {
                            decisions[i] = Some(Decision::Undecided(why.clone()));
                        }
                        break;
                    }
                    tokio::time::sleep(crate::backoff::DYNAMODB.delay(lost)).await;
                    continue;
                }
                tracing::info!(
                    table = %self.table,
                    recorded = round.commit.puts.len(),
                    replaced = round.commit.deletes.len(),
                    "windows recorded"
                );
            }
            for (i, decision) in round.decided {
                if let Decision::Granted(_) = decision {
                    let r = &batch.requests[i];
                    held.retain(|w| w.namespace != r.namespace);
                    held.push(Window {
                        namespace: r.namespace.clone(),
                        cost_center: r.cost_center.clone(),
                        until: r.until,
                    });
                }
                decisions[i] = Some(decision);
            }
            pending = round.deferred;
        }
        Ok(decisions
            .into_iter()
            .map(|d| d.expect("every request is decided, undecided or withheld"))
            .collect())
    }

    /// What [`grant`](Self::grant) would decide now, writing nothing (for `--dry-run`): the same
    /// reads, the same rules, the same all-or-nothing.
    pub async fn preview(&self, batch: &GrantBatch<'_>) -> Result<Vec<Decision>> {
        self.check_caps(batch)?;
        let pending: Vec<usize> = (0..batch.requests.len()).collect();
        let partitions = self.read_partitions(&wanted(batch, &pending)).await?;
        let mut decided = plan::decide(batch, &self.cluster, &pending, batch.own_windows, &partitions)?;
        if batch.all_or_nothing {
            plan::withhold_unless_all_granted(&mut decided);
        }
        Ok(decided.into_iter().map(|(_, d)| d).collect())
    }

    fn check_caps(&self, batch: &GrantBatch<'_>) -> Result<()> {
        if batch.caps.cluster_name != self.cluster {
            return Err(Error::Usage(format!(
                "windows of cluster {} granted with the caps of cluster {}",
                self.cluster, batch.caps.cluster_name
            )));
        }
        Ok(())
    }

    /// Records windows that are open on this cluster's Namespaces but not in the table (see
    /// [`plan::reconcile`]), bumping their cost centers' versions like a grant, so that a grant
    /// racing with it reads them. No cap is checked: these windows are already open.
    pub async fn record(&self, records: &[WindowRecord], run_id: &str) -> Result<()> {
        for chunk in records.chunks(MAX_TRANSACTION_ITEMS / 2) {
            let wanted: BTreeSet<String> = chunk.iter().map(|r| r.cost_center.clone()).collect();
            let mut lost = 0;
            loop {
                let partitions = self.read_partitions(&wanted).await?;
                let mut versions = BTreeMap::new();
                for (cc, partition) in &partitions {
                    let partition = partition.as_ref().map_err(|e| Error::dynamo(e.clone()))?;
                    versions.insert(cc.clone(), partition.version);
                }
                let commit = Commit {
                    versions,
                    puts: chunk.to_vec(),
                    deletes: Vec::new(),
                };
                match self.commit(&commit, run_id).await? {
                    Committed::Yes => break,
                    Committed::LostRace(why) => {
                        lost += 1;
                        if lost >= MAX_ROUNDS {
                            return Err(Error::dynamo(format!(
                                "{}: windows not recorded after {lost} lost races ({why})",
                                self.table
                            )));
                        }
                        tokio::time::sleep(crate::backoff::DYNAMODB.delay(lost)).await;
                    }
                }
            }
        }
        Ok(())
    }

    /// Deletes windows of this cluster (ended early, rolled back, or never brought up), in
    /// batches of 25. A window of another cluster is refused: each cluster releases its own.
    /// Returns how many keys were deleted (absent ones included).
    pub async fn release(&self, keys: &[WindowKey]) -> Result<usize> {
        if let Some(foreign) = keys.iter().find(|k| !k.is_of_cluster(&self.cluster)) {
            return Err(Error::Usage(format!(
                "cluster {} cannot release window {foreign}: not one of its own",
                self.cluster
            )));
        }
        let keys: BTreeSet<&WindowKey> = keys.iter().collect();
        let keys: Vec<&WindowKey> = keys.into_iter().collect();
        for chunk in keys.chunks(RELEASE_BATCH) {
            let mut requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|k| {
                    DeleteRequest::builder()
                        .set_key(Some(k.to_item()))
                        .build()
                        .map(|d| WriteRequest::builder().delete_request(d).build())
                        .map_err(Error::dynamo_source)
                })
                .collect::<Result<_>>()?;
            for attempt in 0.. {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests)
                    .send()
                    .await
                    .map_err(|e| dynamo::sdk_error(&format!("BatchWriteItem {}", self.table), e))?;
                requests = out
                    .unprocessed_items
                    .and_then(|mut u| u.remove(&self.table))
                    .unwrap_or_default();
                if requests.is_empty() {
                    break;
                }
                if attempt + 1 >= RELEASE_ATTEMPTS {
                    return Err(Error::dynamo(format!(
                        "BatchWriteItem {}: {} window(s) still not released after {RELEASE_ATTEMPTS} attempts",
                        self.table,
                        requests.len()
                    )));
                }
                tokio::time::sleep(crate::backoff::DYNAMODB.delay(attempt)).await;
            }
        }
        tracing::info!(table = %self.table, released = keys.len(), "windows released");
        Ok(keys.len())
    }

    /// The recovery a run of this cluster makes after one of its runs died (docs/fleet.md): lists
    /// this cluster's recorded windows, releases those its Namespaces' `open` windows do not back,
    /// and records the open ones that are not recorded as they are ([`plan::reconcile`]). Three
    /// calls at most (a Query of the cluster GSI, one BatchWriteItem, one grant-like commit).
    pub async fn recover(
        &self,
        open: &[Window],
        hours: &crate::hours::BusinessHours,
        at: chrono::DateTime<chrono::Utc>,
        run_id: &str,
    ) -> Result<plan::Reconciliation> {
        let listed = self.recorded().await?;
        let found = plan::reconcile(&self.cluster, &listed, open, hours, at, run_id)?;
        for l in listed
            .iter()
            .filter(|l| l.record.is_err() && found.release.contains(&l.key))
        {
            tracing::warn!(table = %self.table, key = %l.key, error = ?l.record.as_ref().err(), "unreadable window of this cluster released");
        }
        if !found.release.is_empty() {
            self.release(&found.release).await?;
        }
        if !found.record.is_empty() {
            self.record(&found.record, run_id).await?;
        }
        tracing::info!(
            table = %self.table,
            released = found.release.len(),
            recorded = found.record.len(),
            "windows of this cluster reconciled with its Namespaces"
        );
        Ok(found)
    }

    /// Every item of this cluster, through the cluster GSI (eventually consistent; paginated),
    /// each read or not: what a recovery compares with its Namespaces ([`plan::reconcile`]).
    pub async fn recorded(&self) -> Result<Vec<Listed>> {
        let items = self.query(Some(CLUSTER_INDEX), "cluster", &self.cluster, false).await?;
        Ok(items
            .iter()
            .filter_map(|item| {
                let Some(key) = WindowKey::from_item(item) else {
                    tracing::error!(table = %self.table, "an item without a key in {CLUSTER_INDEX}");
                    return None;
                };
                Some(Listed {
                    record: WindowRecord::from_item(item).map_err(|e| format!("item {key}: {e}")),
                    key,
                })
            })
            .collect())
    }

    /// The partitions of `cost_centers`, each read in one consistent Query (a few at once).
    async fn read_partitions(
        &self,
        cost_centers: &BTreeSet<String>,
    ) -> Result<BTreeMap<String, std::result::Result<Partition, String>>> {
        // Owned names: a closure over borrowed ones makes the future not `Send` for every lifetime.
        let reads = futures::stream::iter(cost_centers.iter().cloned().map(|cc| async move {
            let items = self.query(None, PARTITION_KEY, &cc, true).await?;
            let partition = Partition::from_items(&cc, &items);
            if let Err(e) = &partition {
                tracing::error!(table = %self.table, cost_center = %cc, error = %e, "windows of a cost center do not read; its requests stay undecided");
            }
            Ok::<_, Error>((cc, partition))
        }))
        .buffer_unordered(READ_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
        reads.into_iter().collect()
    }

    /// Every item with `attribute = value` on the table or one of its indexes, paginated.
    async fn query(&self, index: Option<&str>, attribute: &str, value: &str, consistent: bool) -> Result<Vec<Item>> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .set_index_name(index.map(str::to_string))
                .key_condition_expression("#k = :v")
                .expression_attribute_names("#k", attribute)
                .expression_attribute_values(":v", AttributeValue::S(value.to_string()))
                .consistent_read(consistent)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| dynamo::sdk_error(&format!("Query {} ({attribute} = {value})", self.table), e))?;
            items.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    /// One TransactWriteItems: the version items bumped on condition, the windows put, the
    /// replaced ones deleted.
    async fn commit(&self, commit: &Commit, run_id: &str) -> Result<Committed> {
        let mut items = Vec::with_capacity(commit.items());
        for (cc, read) in &commit.versions {
            items.push(
                TransactWriteItem::builder()
                    .update(self.bump(cc, *read, run_id)?)
                    .build(),
            );
        }
        for record in &commit.puts {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(record.to_item()))
                .build()
                .map_err(Error::dynamo_source)?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        for key in &commit.deletes {
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key.to_item()))
                .build()
                .map_err(Error::dynamo_source)?;
            items.push(TransactWriteItem::builder().delete(delete).build());
        }
        let sent = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            // The SDK's own retry of a lost answer is then applied once, not twice.
            .client_request_token(format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(Committed::Yes),
            Err(e) => match lost_race(&e) {
                Some(why) => Ok(Committed::LostRace(why)),
                None => Err(dynamo::sdk_error(&format!("TransactWriteItems {}", self.table), e)),
            },
        }
    }

    /// The update of a cost center's version item from `read` to the next version, on the
    /// condition that it still has `read` (absent when it had none).
    fn bump(&self, cost_center: &str, read: Option<u64>, run_id: &str) -> Result<Update> {
        let condition = match read {
            Some(_) => "#v = :read",
            None => "attribute_not_exists(#v)",
        };
        let next = read.map_or(1, |v| v + 1);
        let mut values = HashMap::from([
            (":next".to_string(), AttributeValue::N(next.to_string())),
            (
                ":by".to_string(),
                AttributeValue::S(format!("cluster {} run {run_id}", self.cluster)),
            ),
        ]);
        if let Some(v) = read {
            values.insert(":read".to_string(), AttributeValue::N(v.to_string()));
        }
        Update::builder()
            .table_name(&self.table)
            .set_key(Some(WindowKey::version_of(cost_center).to_item()))
            .update_expression("SET #v = :next, #by = :by")
            .condition_expression(condition)
            .expression_attribute_names("#v", VERSION_ATTRIBUTE)
            .expression_attribute_names("#by", "updated_by")
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(Error::dynamo_source)
    }
}

/// The cost centers whose partitions a decision reads: those of the pending requests that may
/// grant (the others are rejected without the table).
fn wanted(batch: &GrantBatch<'_>, pending: &[usize]) -> BTreeSet<String> {
    pending
        .iter()
        .map(|&i| &batch.requests[i].cost_center)
        .filter(|cc| batch.permissions.get(*cc).is_some_and(|c| c.is_authorized))
        .cloned()
        .collect()
}

/// Why a transaction was cancelled by a concurrent writer (read again and decide again), or
/// None for any other failure.
fn lost_race<R>(err: &SdkError<TransactWriteItemsError, R>) -> Option<String> {
    let service = err.as_service_error()?;
    if let TransactWriteItemsError::TransactionCanceledException(cancelled) = service {
        let codes: Vec<&str> = cancelled
            .cancellation_reasons()
            .iter()
            .filter_map(|r| r.code())
            .filter(|c| *c != "None")
            .collect();
        let racing = |c: &&str| {
            matches!(
                *c,
                "ConditionalCheckFailed" | "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"
            )
        };
        return (!codes.is_empty() && codes.iter().all(racing)).then(|| codes.join(", "));
    }
    matches!(
        service.code(),
        Some("TransactionInProgressException" | "TransactionConflictException")
    )
    .then(|| service.code().unwrap_or_default().to_string())
}
