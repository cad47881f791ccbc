//! The streaming path of the audit writer: records are handed over one at a time while the run
//! is still scaling (each namespace's record as soon as that namespace is done), so the audit
//! overlaps the Kubernetes work instead of starting after the last namespace.
//!
//! A background task batches them [`BATCH_SIZE`] per BatchWriteItem, keeps up to
//! [`CONCURRENT_BATCHES`] batches in flight, sends a partial batch once no record has arrived
//! for [`IDLE_FLUSH`], and sends whatever is left when the stream is finished. Each batch has the
//! guarantees of [`AuditWriter::write_all`]: retries with backoff within `RETRY_BUDGET` (each
//! batch on its own), every record not written logged whole at ERROR (as soon as its batch gives up), and
//! [`AuditStream::finish`] an error naming how many were not written — never a silent drop. A
//! record is held only until its batch is answered.

use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc;

use super::{log_unwritten, AuditRecord, AuditWriter, BATCH_SIZE, CONCURRENT_BATCHES};
use crate::config::Config;
use crate::error::{Error, Result};

/// A partial batch is sent once no record has arrived for this long.
pub const IDLE_FLUSH: Duration = Duration::from_millis(5);

/// The sending end of a streaming audit write; see the module documentation.
pub struct AuditStream {
    table: String,
    /// `None` once the writer task is gone (it only ends when the stream is finished).
    tx: Option<mpsc::UnboundedSender<AuditRecord>>,
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
        self.sent += 1;
        let refused = match &self.tx {
            Some(tx) => tx.send(record).err().map(|e| e.0),
            None => Some(record),
        };
        if let Some(record) = refused {
            self.tx = None;
            self.lost += 1;
            log_unwritten(&self.table, &record, "the audit writer task has stopped");
        }
    }

    /// Records handed over so far.
    pub fn sent(&self) -> usize {
        self.sent
    }

    /// Sends what is left and waits for every batch. `Ok(written)` when every record handed
    /// over was written; otherwise the error of [`AuditWriter::write_all`] (each record not
    /// written has been logged whole at ERROR already).
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
        Err(Error::Dynamo(format!(
            "{failed} of {} audit records could not be written to {} ({reason}); each is logged whole at ERROR",
            self.sent, self.table
        )))
    }
}

async fn write_stream(writer: AuditWriter, mut rx: mpsc::UnboundedReceiver<AuditRecord>) -> Tally {
    let mut tally = Tally::default();
    let mut batch: Vec<AuditRecord> = Vec::with_capacity(BATCH_SIZE);
    let mut in_flight = FuturesUnordered::new();
    let mut open = true;
    let write = |records: Vec<AuditRecord>| {
        let writer = &writer;
        async move {
            let (written, failed) = writer.write_chunk(0, &records).await;
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

/// A run's audit: the background writer is started with the first record, so a run that
/// changes nothing never connects to DynamoDB.
pub struct AuditSink<'a> {
    config: &'a Config,
    stream: Option<AuditStream>,
    /// Seconds added to every record's timestamps (0 but for `NS_SCHEDULER_AUDIT_CLOCK=decision`).
    shift: f64,
}

impl<'a> AuditSink<'a> {
    pub fn new(config: &'a Config, shift: f64) -> Self {
        AuditSink {
            config,
            stream: None,
            shift,
        }
    }

    pub async fn send(&mut self, mut record: AuditRecord) {
        record.timestamp_start += self.shift;
        record.timestamp_end += self.shift;
        if self.stream.is_none() {
            let client = crate::dynamo::client(self.config).await;
            self.stream = Some(AuditWriter::new(client, self.config.audit_table.clone()).stream());
        }
        if let Some(s) = &mut self.stream {
            s.send(record);
        }
    }

    /// Waits for the last batches: (records handed over, the error if any was not written).
    pub async fn finish(self) -> (usize, Option<String>) {
        let Some(stream) = self.stream else { return (0, None) };
        let sent = stream.sent();
        match stream.finish().await {
            Ok(_) => (sent, None),
            Err(e) => {
                tracing::error!(error = %e, "audit could not be written in full");
                (sent, Some(e.to_string()))
            }
        }
    }
}
