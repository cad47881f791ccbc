//! The streaming path of the audit writer: records (and the deletions of intents whose
//! namespace never started) are handed over one at a time while the run is still scaling (each
//! namespace's record as soon as that namespace is done), so the audit overlaps the Kubernetes
//! work instead of starting after the last namespace. [`AuditTable`] also writes the intents,
//! synchronously, just before their namespaces start.
//!
//! A background task batches them [`BATCH_SIZE`] per BatchWriteItem, keeps up to
//! [`CONCURRENT_BATCHES`] batches in flight, sends a partial batch once no record has arrived
//! for [`IDLE_FLUSH`], and sends whatever is left when the stream is finished. Each batch is
//! retried on its own ([`AuditWriter::write_chunk`]: `UnprocessedItems`, throttling, 5xx,
//! timeouts, with backoff within `RETRY_BUDGET`), every record not written is logged whole at
//! ERROR (as soon as its batch gives up), and
//! [`AuditStream::finish`] an error naming how many were not written — never a silent drop. A
//! record is held only until its batch is answered.

use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc;

use super::{log_unwritten, AuditRecord, AuditWrite, AuditWriter, BATCH_SIZE, CONCURRENT_BATCHES};
use crate::error::{Error, Result};

/// A partial batch is sent once no record has arrived for this long. Long enough that records
/// arriving a few milliseconds apart (a namespace ending every ~5 ms at 200 namespaces) fill
/// batches of 25 — at 5 ms they went out in twos and threes, three times the BatchWriteItem calls
/// at 2,000 namespaces — and harmless now that each namespace's intent is in the table before its
/// first write: a final record held back this long and lost to a SIGKILL leaves its intent, which
/// the next run closes. Whatever is left goes out at once when the stream is finished.
pub const IDLE_FLUSH: Duration = Duration::from_millis(50);

/// The sending end of a streaming audit write; see the module documentation.
pub struct AuditStream {
    table: String,
    /// `None` once the writer task is gone (it only ends when the stream is finished).
    tx: Option<mpsc::UnboundedSender<AuditWrite>>,
    task: tokio::task::JoinHandle<Tally>,
    sent: usize,
    /// Records that could not even be handed to the writer task (logged whole when refused).
    lost: usize,
}

#[derive(Debug, Default)]
struct Tally {
    written: usize,
    failed: usize,
    first_reason: Option<String>,
}

impl AuditWriter {
    /// Starts the background writer (on the current tokio runtime) and returns its sending end.
    pub fn stream(self) -> AuditStream {
        let (tx, rx) = mpsc::unbounded_channel();
        let table = self.table.clone();
        let task = tokio::spawn(write_stream(self, rx));
        AuditStream {
            table,
            tx: Some(tx),
            task,
            sent: 0,
            lost: 0,
        }
    }
}

impl AuditStream {
    /// Hands one record to the writer; never blocks (the channel is unbounded: records wait
    /// only while DynamoDB is slower than the scaling, which is the rare case).
    pub fn send(&mut self, record: AuditRecord) {
        self.send_write(AuditWrite::Put(Box::new(record)));
    }

    /// Hands one write (a record, or the deletion of an intent) to the writer.
    pub fn send_write(&mut self, write: AuditWrite) {
        self.sent += 1;
        let refused = match &self.tx {
            Some(tx) => tx.send(write).err().map(|e| e.0),
            None => Some(write),
        };
        if let Some(write) = refused {
            self.tx = None;
            self.lost += 1;
            log_unwritten(&self.table, &write, "the audit writer task has stopped");
        }
    }

    /// Records handed over so far.
    pub fn sent(&self) -> usize {
        self.sent
    }

    /// Sends what is left and waits for every batch. `Ok(written)` when every record handed
    /// over was written; otherwise an [`Error::Dynamo`] naming how many of how many were not
    /// written (each of them has been logged whole at ERROR already).
    pub async fn finish(mut self) -> Result<usize> {
        drop(self.tx.take());
        let tally = match self.task.await {
            Ok(t) => t,
            // Only if the task panicked (a release build aborts instead): its records were
            // neither written nor logged, so say so and fail the run.
            Err(e) => Tally {
                written: 0,
                failed: self.sent - self.lost,
                first_reason: Some(format!(
                    "the audit writer task failed ({e}); its records were not logged"
                )),
            },
        };
        let failed = tally.failed + self.lost;
        if failed == 0 {
            return Ok(tally.written);
        }
        let reason = tally
            .first_reason
            .unwrap_or_else(|| "the audit writer task has stopped".into());
        Err(Error::dynamo(format!(
            "{failed} of {} audit records could not be written to {} ({reason}); each is logged whole at ERROR",
            self.sent, self.table
        )))
    }
}

async fn write_stream(writer: AuditWriter, mut rx: mpsc::UnboundedReceiver<AuditWrite>) -> Tally {
    let mut tally = Tally::default();
    let mut batch: Vec<AuditWrite> = Vec::with_capacity(BATCH_SIZE);
    let mut in_flight = FuturesUnordered::new();
    let mut open = true;
    let write = |records: Vec<AuditWrite>| {
        let writer = &writer;
        async move {
            let (written, failed) = writer.write_chunk(0, &records, super::MAX_ATTEMPTS).await;
            for (index, reason) in &failed {
                log_unwritten(&writer.table, &records[*index], reason);
            }
            (written, failed.len(), failed.into_iter().next().map(|(_, r)| r))
        }
    };
    loop {
        let ready = batch.len() >= BATCH_SIZE || (!open && !batch.is_empty());
        if ready && in_flight.len() < CONCURRENT_BATCHES {
            in_flight.push(write(std::mem::replace(&mut batch, Vec::with_capacity(BATCH_SIZE))));
            continue;
        }
        if !open && batch.is_empty() && in_flight.is_empty() {
            return tally;
        }
        // Every state left has at least one branch enabled: an open channel with room in the
        // batch, batches in flight, or (closed, batch waiting) batches in flight.
        let idle = open && !batch.is_empty() && batch.len() < BATCH_SIZE && in_flight.len() < CONCURRENT_BATCHES;
        tokio::select! {
            Some((written, failed, reason)) = in_flight.next(), if !in_flight.is_empty() => {
                tally.written += written;
                tally.failed += failed;
                if tally.first_reason.is_none() {
                    tally.first_reason = reason;
                }
            }
            r = rx.recv(), if open && batch.len() < BATCH_SIZE => match r {
                Some(record) => batch.push(record),
                None => open = false,
            },
            _ = tokio::time::sleep(IDLE_FLUSH), if idle => {
                in_flight.push(write(std::mem::replace(&mut batch, Vec::with_capacity(BATCH_SIZE))));
            }
        }
    }
}

/// A run's audit table: every write is shifted by the run's audit clock
/// (0 but for `NS_SCHEDULER_AUDIT_CLOCK=decision`). Shared by the intents, written as their
/// namespaces are about to start, and by the [`AuditSink`] of the final records.
pub struct AuditTable {
    writer: AuditWriter,
    shift: f64,
    /// After a batch of intents gave up, the next ones get one attempt each until one batch
    /// goes through: a DynamoDB outage must not hold every namespace for the whole retry budget.
    degraded: std::cell::Cell<bool>,
}

impl AuditTable {
    pub fn new(writer: AuditWriter, shift: f64) -> Self {
        AuditTable {
            writer,
            shift,
            degraded: std::cell::Cell::new(false),
        }
    }

    pub fn writer(&self) -> &AuditWriter {
        &self.writer
    }

    /// Writes these intents now (at most [`BATCH_SIZE`]: one BatchWriteItem, retried), and says
    /// for each whether it is in the table. One that is not is logged whole at ERROR: that line
    /// is its record, and the caller fails the run (exit 1) — but its namespace still proceeds.
    pub async fn write_intents(&self, intents: Vec<AuditRecord>) -> Vec<bool> {
        let writes: Vec<AuditWrite> = intents
            .into_iter()
            .map(|r| AuditWrite::Put(Box::new(r)).shifted(self.shift))
            .collect();
        let attempts = if self.degraded.get() { 1 } else { super::MAX_ATTEMPTS };
        let writer = self.writer();
        let mut in_table = vec![true; writes.len()];
        for chunk_start in (0..writes.len()).step_by(BATCH_SIZE) {
            let chunk = &writes[chunk_start..(chunk_start + BATCH_SIZE).min(writes.len())];
            let (_, failed) = writer.write_chunk(chunk_start, chunk, attempts).await;
            self.degraded.set(!failed.is_empty());
            for (index, reason) in failed {
                in_table[index] = false;
                log_unwritten(writer.table(), &writes[index], &format!("intent: {reason}"));
            }
        }
        in_table
    }
}

/// A run's final records (and the deletions of intents whose namespace never started): the
/// background writer is started with the first one.
pub struct AuditSink<'t> {
    table: &'t AuditTable,
    stream: Option<AuditStream>,
    records: usize,
}

impl<'t> AuditSink<'t> {
    pub fn new(table: &'t AuditTable) -> Self {
        AuditSink {
            table,
            stream: None,
            records: 0,
        }
    }

    pub async fn send(&mut self, record: AuditRecord) {
        self.send_write(AuditWrite::Put(Box::new(record))).await;
    }

    pub async fn send_write(&mut self, write: AuditWrite) {
        self.records += usize::from(matches!(write, AuditWrite::Put(_)));
        let write = write.shifted(self.table.shift);
        if self.stream.is_none() {
            self.stream = Some(self.table.writer().clone().stream());
        }
        if let Some(s) = &mut self.stream {
            s.send_write(write);
        }
    }

    /// Waits for the last batches: (records handed over, the error if any write was not done).
    pub async fn finish(self) -> (usize, Option<String>) {
        let Some(stream) = self.stream else { return (0, None) };
        let sent = self.records;
        match stream.finish().await {
            Ok(_) => (sent, None),
            Err(e) => {
                tracing::error!(error = %e, "audit could not be written in full");
                (sent, Some(e.to_string()))
            }
        }
    }
}
